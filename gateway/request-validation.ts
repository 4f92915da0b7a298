/**
 * The edge check of a request, before connect-node decodes anything. Each
 * handler is wrapped so that a single-message request is first admitted
 * (caller authenticated, tenant's rate taken: nobody unknown makes the
 * gateway read a body), then read up to its tenant's byte limit, then measured
 * on its bytes against the tenant's limits on nesting, list length and values
 * (`request-shape.ts`) — decoding a large `Struct` is what costs — and only
 * then decoded strictly: protobuf against the method's input type (strict
 * UTF-8), JSON for valid UTF-8. connect-es would report a protobuf body that
 * does not parse as INTERNAL and decode JSON leniently (invalid UTF-8 becomes
 * U+FFFD); at the gateway both are the caller's fault.
 *
 * A refused request is swapped for an empty message (its length header
 * dropped) and flagged, so the guard throws the reason in whichever protocol
 * the caller speaks: INVALID_ARGUMENT for a malformed body or one past a shape
 * limit, RESOURCE_EXHAUSTED (not retryable) for one past the byte limit.
 * Compressed bodies and frames (gzip, br) are inflated for the check, at most
 * to the byte limit, so a decompression bomb costs no more than a large body.
 */
import { promisify } from "node:util";
import { brotliDecompress, gunzip } from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import { type ConnectRouter, type ContextValues, createContextKey } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { jsonShapeProblem, protoShapeProblem } from "./request-shape.js";
import type { RequestLimits } from "./tenant-limits.js";

/** Set when the request was refused at the edge; the guard throws it. */
export const inputErrorKey = createContextKey<Error | undefined>(undefined, {
  description: "input error",
});

export interface RequestCheckOptions {
  /** The transport's limit (connect-node's `readMaxBytes`): no body is read past it. */
  maxBytes: number;
  /**
   * Admits the caller of a request (puts its principal into `values`) and
   * returns what the request may cost; throws to refuse it.
   */
  admit: (header: Headers, values: ContextValues) => Promise<RequestLimits>;
}

type BodyKind = { json: boolean; enveloped: boolean } | undefined;

function kindOf(contentType: string): BodyKind {
  const t = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  switch (t) {
    case "application/proto":
      return { json: false, enveloped: false };
    case "application/json":
      return { json: true, enveloped: false };
    case "application/connect+proto":
    case "application/grpc":
    case "application/grpc+proto":
    case "application/grpc-web":
    case "application/grpc-web+proto":
      return { json: false, enveloped: true };
    case "application/connect+json":
    case "application/grpc+json":
    case "application/grpc-web+json":
      return { json: true, enveloped: true };
    default:
      return undefined; // connect-node rejects it
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The encodings connect-node accepts by default, each inflating at most `max` bytes. */
const inflaters: Record<string, (data: Uint8Array, max: number) => Promise<Uint8Array>> = {
  gzip: (data, max) => promisify(gunzip)(data, { maxOutputLength: max }),
  br: (data, max) => promisify(brotliDecompress)(data, { maxOutputLength: max }),
};

/** Wraps every handler of `router` (call at the end of `routes`). */
export function validateRequests(router: ConnectRouter, options: RequestCheckOptions): void {
  const handlers = router.handlers;
  for (let i = 0; i < handlers.length; i++) {
    const h = handlers[i] as UniversalHandler;
    const wrapped = Object.assign((req: UniversalServerRequest) => check(h, req, options), {
      protocolNames: h.protocolNames,
      service: h.service,
      method: h.method,
      requestPath: h.requestPath,
      allowedMethods: h.allowedMethods,
      supportedContentType: h.supportedContentType,
    }) satisfies UniversalHandler;
    handlers[i] = wrapped;
  }
}

async function check(
  h: UniversalHandler,
  req: UniversalServerRequest,
  options: RequestCheckOptions,
) {
  const kind = kindOf(req.header.get("content-type") ?? "");
  const body = req.body;
  const values = req.contextValues;
  // Only single-message requests are buffered: a client stream stays a stream.
  const single = h.method.methodKind === "unary" || h.method.methodKind === "server_streaming";
  if (
    !single ||
    kind === undefined ||
    req.method !== "POST" ||
    values === undefined ||
    !isAsyncIterable(body)
  ) {
    return h(req);
  }
  // A unary body is compressed whole (content-encoding); enveloped frames each
  // say whether they are, in the encoding their protocol's header names.
  const encoding = (
    kind.enveloped
      ? (req.header.get("connect-content-encoding") ?? req.header.get("grpc-encoding"))
      : req.header.get("content-encoding")
  )?.trim();
  const inflate = encoding && encoding !== "identity" ? inflaters[encoding] : identity;
  // An encoding connect-node does not know: it answers that itself.
  if (inflate === undefined) return h(req);
  const refuse = (error: Error) => {
    values.set(inputErrorKey, error);
    // The length header promised the body replaced here.
    const header = new Headers(req.header);
    header.delete("content-length");
    const empty = kind.json ? new TextEncoder().encode("{}") : new Uint8Array(0);
    return h({ ...req, header, body: replay([kind.enveloped ? envelope(empty) : empty]) });
  };
  let limits: RequestLimits;
  try {
    const tenant = await options.admit(req.header, values);
    limits = { ...tenant, maxBytes: Math.min(tenant.maxBytes, options.maxBytes) };
  } catch (err) {
    return refuse(err as Error);
  }
  const { maxBytes } = limits;
  const tooLarge = () =>
    new MeshError(
      Code.ResourceExhausted,
      `request ${h.method.input.typeName} is larger than ${maxBytes} bytes, the most this tenant may send`,
      { retryable: false },
    );
  // Buffer the body (connect-node would too), up to a little over the limit (envelope headers).
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.byteLength;
    if (size > maxBytes + 64) return refuse(tooLarge());
  }
  const bytes = concat(chunks, size);
  const problem = await validate(h, kind, bytes, limits, tooLarge, (data) =>
    inflate(data, maxBytes),
  );
  return problem ? refuse(problem) : h({ ...req, body: replay([bytes]) });
}

async function validate(
  h: UniversalHandler,
  kind: NonNullable<BodyKind>,
  bytes: Uint8Array,
  limits: RequestLimits,
  tooLarge: () => MeshError,
  inflate: (data: Uint8Array) => Promise<Uint8Array>,
): Promise<MeshError | undefined> {
  const type = h.method.input.typeName;
  const invalid = (message: string) =>
    new MeshError(Code.InvalidArgument, `malformed request ${type}: ${message}`);
  const one = async (raw: Uint8Array, compressed: boolean) => {
    let data = raw;
    if (compressed) {
      try {
        data = await inflate(raw);
      } catch (err) {
        if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") return tooLarge();
        return invalid(`body does not decompress: ${(err as Error).message}`);
      }
    }
    if (data.byteLength > limits.maxBytes) return tooLarge();
    const shape = kind.json
      ? jsonShapeProblem(data, limits)
      : protoShapeProblem(h.method.input, data, limits);
    if (shape !== undefined) return new MeshError(Code.InvalidArgument, `${type}: ${shape}`);
    try {
      if (kind.json) strictUtf8.decode(data);
      else fromBinary(h.method.input, data, { readUnknownFields: false });
      return undefined;
    } catch (err) {
      return invalid(kind.json ? "body is not valid UTF-8" : (err as Error).message);
    }
  };
  if (!kind.enveloped) return one(bytes, inflate !== identity);
  let pos = 0;
  while (pos < bytes.length) {
    if (pos + 5 > bytes.length) return invalid("truncated message envelope");
    const flags = bytes[pos] as number;
    const length = new DataView(bytes.buffer, bytes.byteOffset + pos + 1, 4).getUint32(0);
    if (pos + 5 + length > bytes.length) return invalid("truncated message");
    // End-of-stream (0x02) frames, and compressed frames without an encoding, are connect-node's.
    const compressed = (flags & 0x01) !== 0;
    if ((flags & 0x02) === 0 && !(compressed && inflate === identity)) {
      const problem = await one(bytes.subarray(pos + 5, pos + 5 + length), compressed);
      if (problem !== undefined) return problem;
    }
    pos += 5 + length;
  }
  return undefined;
}

const identity = async (data: Uint8Array) => data;

function envelope(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

async function* replay(chunks: Uint8Array[]): AsyncIterable<Uint8Array> {
  yield* chunks;
}

function isAsyncIterable(x: unknown): x is AsyncIterable<Uint8Array> {
  return typeof x === "object" && x !== null && Symbol.asyncIterator in x;
}
