/**
 * The gateway's edge for errors, in one place: whatever the guard, a handler,
 * the policy or an internal service throws leaves through `errorInterceptor`
 * (the outermost interceptor, streams included) as a `ConnectError` with the
 * same code (gRPC and Connect share the numbering), the message, and the
 * structured details plus `retryable` as a `google.protobuf.Struct` error
 * detail. Unknown failures become INTERNAL with a generic message; the cause
 * stays in the log. Everything inside the gateway throws plain `MeshError`s.
 */
import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { type Struct, StructSchema } from "@bufbuild/protobuf/wkt";
import { ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import { Code, MeshError } from "../lib/errors/mesh-error.js";

/** Maps everything a call throws, before or while it streams, with `toConnectError`. */
export function errorInterceptor(): Interceptor {
  return (next) => async (req) => {
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      throw toConnectError(err);
    }
    if (!res.stream) return res;
    return { ...res, message: mapping((res as StreamResponse).message) } as typeof res;
  };
}

async function* mapping<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    throw toConnectError(err);
  }
}

/** A ConnectError for anything thrown; ConnectErrors pass through. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const mesh = MeshError.from(err);
  const headers = new Headers();
  const details: { desc: typeof StructSchema; value: Struct }[] = [];
  const body: JsonObject = { ...(mesh.details as JsonObject), retryable: mesh.retryable };
  const retryAfterMs = mesh.details.retryAfterMs;
  if (typeof retryAfterMs === "number") {
    // Standard HTTP hint, understood by proxies and retry libraries; whole seconds, at least 1.
    headers.set("retry-after", String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
  }
  try {
    details.push({ desc: StructSchema, value: fromJson(StructSchema, body) });
  } catch {
    // Details that are not JSON-safe are dropped rather than failing the error itself.
  }
  return new ConnectError(mesh.message, mesh.code as number, headers, details, mesh);
}

/** A MeshError for a RESOURCE_EXHAUSTED answer with a retry hint. */
export function exhausted(message: string, retryAfterMs: number): MeshError {
  return new MeshError(Code.ResourceExhausted, message, {
    details: { retryAfterMs: Math.ceil(retryAfterMs) },
  });
}
