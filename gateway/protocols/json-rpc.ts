/**
 * JSON-RPC 2.0 envelopes and the mapping of mesh errors onto them. Mesh codes
 * without a protocol meaning become application errors `-32100 - code`
 * (UNAUTHENTICATED -32116, PERMISSION_DENIED -32107, RESOURCE_EXHAUSTED
 * -32108, FAILED_PRECONDITION -32109, ...), with the mesh code, `retryable`
 * and the retry hint in `data`; the HTTP status tells the same (401, 403, 429).
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code, codeName, MeshError } from "../../lib/errors/mesh-error.js";

export type JsonRpcId = string | number | null;

export interface JsonRpcRequest {
  id: JsonRpcId;
  method: string;
  params: JsonObject;
}

export const jsonRpcCodes = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
} as const;

/** A protocol-level error with its own JSON-RPC code (e.g. A2A's TaskNotFoundError -32001). */
export class JsonRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: JsonObject,
  ) {
    super(message);
  }
}

/** The request envelope, or a JsonRpcError (-32600) saying what is wrong with it. */
export function parseEnvelope(body: unknown): JsonRpcRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new JsonRpcError(
      jsonRpcCodes.invalidRequest,
      "a JSON-RPC request is one object (no batches)",
    );
  }
  const b = body as Record<string, unknown>;
  const id = b.id;
  if (b.jsonrpc !== "2.0")
    throw new JsonRpcError(jsonRpcCodes.invalidRequest, 'jsonrpc must be "2.0"');
  if (typeof b.method !== "string" || b.method.length > 128) {
    throw new JsonRpcError(jsonRpcCodes.invalidRequest, "method must be a string");
  }
  if (!(id === undefined || id === null || typeof id === "string" || typeof id === "number")) {
    throw new JsonRpcError(jsonRpcCodes.invalidRequest, "id must be a string, a number or null");
  }
  const params = b.params ?? {};
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new JsonRpcError(jsonRpcCodes.invalidParams, "params must be an object");
  }
  return { id: (id ?? null) as JsonRpcId, method: b.method, params: params as JsonObject };
}

export function resultEnvelope(id: JsonRpcId, result: JsonValue): JsonObject {
  return { jsonrpc: "2.0", id, result };
}

/** The error envelope and HTTP status for anything thrown. */
export function errorEnvelope(
  id: JsonRpcId,
  err: unknown,
): { status: number; body: JsonObject; retryAfterS?: number } {
  if (err instanceof JsonRpcError) {
    const error: JsonObject = { code: err.code, message: err.message };
    if (err.data) error.data = err.data;
    return { status: 200, body: { jsonrpc: "2.0", id, error } };
  }
  const mesh = MeshError.from(err);
  const data: JsonObject = { code: codeName(mesh.code), retryable: mesh.retryable };
  // `notJson` and `tooLarge` only choose the codes below; the wire carries the mesh code.
  const retryAfterMs = mesh.details.retryAfterMs;
  if (typeof retryAfterMs === "number") data.retryAfterMs = retryAfterMs;
  const code =
    mesh.details.notJson === true
      ? jsonRpcCodes.parseError
      : mesh.code === Code.InvalidArgument
        ? jsonRpcCodes.invalidParams
        : mesh.code === Code.Internal || mesh.code === Code.Unknown
          ? jsonRpcCodes.internalError
          : -32100 - mesh.code;
  // Unknown failures keep their cause in the log, not on the wire.
  const message =
    mesh.code === Code.Internal || mesh.code === Code.Unknown ? "internal error" : mesh.message;
  // A body past the byte limit is 413 (not worth retrying), a rate past its limit 429.
  const status = mesh.details.tooLarge === true ? 413 : (httpStatus[mesh.code] ?? 200);
  return {
    status,
    body: { jsonrpc: "2.0", id, error: { code, message, data } },
    ...(typeof retryAfterMs === "number"
      ? { retryAfterS: Math.max(1, Math.ceil(retryAfterMs / 1000)) }
      : {}),
  };
}

const httpStatus: Partial<Record<Code, number>> = {
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
};
