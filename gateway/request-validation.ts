/**
 * Strict request decoding at the edge. connect-es reports a protobuf body
 * that does not parse as INTERNAL (it cannot tell a broken client from a
 * broken server) and decodes JSON leniently (invalid UTF-8 becomes U+FFFD).
 * At the gateway both are the caller's fault, so each handler is wrapped to
 * check the body first — protobuf against the method's input type (strict
 * UTF-8), JSON for valid UTF-8 — and a bad one is swapped for an empty
 * message and flagged, so the guard answers INVALID_ARGUMENT in whichever
 * protocol the caller speaks. Compressed bodies and frames (gzip, br) are
 * inflated for the check, at most to the size limit: past it the answer is
 * RESOURCE_EXHAUSTED, so a decompression bomb costs no more than a large body.
 */
import { promisify } from "node:util";
import { brotliDecompress, gunzip } from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, createContextKey } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";

/** Set when the body was refused; the guard throws it. */
export const inputErrorKey = createContextKey<ConnectError | undefined>(undefined, {
  description: "input error",
});

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

/** Why a body is refused: the message and the code to answer with. */
type Problem = { message: string; code: Code };

/** Wraps every handler of `router` (call at the end of `routes`). */
export function validateRequests(router: ConnectRouter, maxBytes: number): void {
  const handlers = router.handlers;
  for (let i = 0; i < handlers.length; i++) {
    const h = handlers[i] as UniversalHandler;
    const wrapped = Object.assign((req: UniversalServerRequest) => check(h, req, maxBytes), {
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

async function check(h: UniversalHandler, req: UniversalServerRequest, maxBytes: number) {
  const kind = kindOf(req.header.get("content-type") ?? "");
  const body = req.body;
  // Only single-message requests are buffered: a client stream stays a stream.
  const single = h.method.methodKind === "unary" || h.method.methodKind === "server_streaming";
  if (
    !single ||
    kind === undefined ||
    req.method !== "POST" ||
    req.contextValues === undefined ||
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
  // Buffer the body (connect-node would too), up to a little over the limit.
  const chunks: Uint8Array[] = [];
  let size = 0;
  const it = body[Symbol.asyncIterator]();
  let over = false;
  for (;;) {
    const r = await it.next();
    if (r.done) break;
    chunks.push(r.value);
    size += r.value.byteLength;
    if (size > maxBytes + 64) {
      over = true;
      break;
    }
  }
  if (over) {
    // Let connect-node refuse it with RESOURCE_EXHAUSTED, reading on from where we stopped.
    return h({ ...req, body: replay(chunks, it) });
  }
  const bytes = concat(chunks, size);
  const problem = await validate(h, kind, bytes, (data) => inflate(data, maxBytes));
  if (problem === undefined) return h({ ...req, body: replay([bytes]) });
  req.contextValues.set(
    inputErrorKey,
    new ConnectError(
      `malformed request ${h.method.input.typeName}: ${problem.message}`,
      problem.code,
    ),
  );
  const empty = kind.json ? new TextEncoder().encode("{}") : new Uint8Array(0);
  return h({ ...req, body: replay([kind.enveloped ? envelope(empty) : empty]) });
}

async function validate(
  h: UniversalHandler,
  kind: NonNullable<BodyKind>,
  bytes: Uint8Array,
  inflate: (data: Uint8Array) => Promise<Uint8Array>,
): Promise<Problem | undefined> {
  const invalid = (message: string): Problem => ({ message, code: Code.InvalidArgument });
  const one = async (raw: Uint8Array, compressed: boolean): Promise<Problem | undefined> => {
    let data = raw;
    if (compressed) {
      try {
        data = await inflate(raw);
      } catch (err) {
        if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
          return { message: "message too large once decompressed", code: Code.ResourceExhausted };
        }
        return invalid(`body does not decompress: ${(err as Error).message}`);
      }
    }
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

async function* replay(
  chunks: Uint8Array[],
  rest?: AsyncIterator<Uint8Array>,
): AsyncIterable<Uint8Array> {
  yield* chunks;
  if (!rest) return;
  for (;;) {
    const r = await rest.next();
    if (r.done) return;
    yield r.value;
  }
}

function isAsyncIterable(x: unknown): x is AsyncIterable<Uint8Array> {
  return typeof x === "object" && x !== null && Symbol.asyncIterator in x;
}
