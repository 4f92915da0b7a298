/**
 * The one place MeshError meets gRPC status. Codes share numbers, so mapping
 * is direct; structured `details` and `retryable` ride in a binary trailer so
 * a MeshError thrown by a handler arrives as the same MeshError at the client.
 * Anything that is not a MeshError becomes INTERNAL with a generic message:
 * stack traces and internal messages stay in the server's log. A message over
 * grpc-js's size limit is RESOURCE_EXHAUSTED that no retry can fix: it says so.
 */
import { Metadata, type StatusObject } from "@grpc/grpc-js";
import { Code, MeshError } from "../errors/mesh-error.js";

/** Trailer carrying `{details, retryable}` of a MeshError as UTF-8 JSON. */
export const errorTrailerKey = "x-agentmesh-error-bin";

/** Limits the trailer so a huge `details` cannot blow the header size limit. */
const maxTrailerBytes = 4096;

/** The status to send for anything thrown by a handler or interceptor. */
export function toStatus(err: MeshError): Partial<StatusObject> {
  const metadata = new Metadata();
  const hasDetails = Object.keys(err.details).length > 0;
  if (hasDetails || err.retryable !== defaultRetryable(err.code)) {
    let json: string;
    try {
      json = JSON.stringify({ details: err.details, retryable: err.retryable });
    } catch {
      json = JSON.stringify({ retryable: err.retryable });
    }
    if (json.length <= maxTrailerBytes) metadata.set(errorTrailerKey, Buffer.from(json, "utf8"));
  }
  return { code: err.code as number, details: err.message, metadata };
}

/** Rebuilds a MeshError from a status a client received. */
export function fromStatus(status: {
  code: number;
  details?: string;
  metadata?: Metadata;
}): MeshError {
  const code = status.code >= 0 && status.code <= 16 ? (status.code as Code) : Code.Unknown;
  let details: Record<string, unknown> | undefined;
  let retryable: boolean | undefined;
  const raw = status.metadata?.get(errorTrailerKey)[0];
  if (raw instanceof Buffer) {
    try {
      const parsed = JSON.parse(raw.toString("utf8")) as {
        details?: Record<string, unknown>;
        retryable?: boolean;
      };
      if (parsed.details && typeof parsed.details === "object") details = parsed.details;
      if (typeof parsed.retryable === "boolean") retryable = parsed.retryable;
    } catch {
      // A garbled trailer only loses the details.
    }
  }
  if (retryable === undefined && isSizeLimit(code, status.details)) {
    return new MeshError(
      code,
      `message too large for the mesh's internal calls (${status.details}); send less data`,
      { retryable: false },
    );
  }
  return new MeshError(code, status.details || codeMessage(code), {
    ...(details ? { details } : {}),
    ...(retryable === undefined ? {} : { retryable }),
  });
}

/**
 * grpc-js's own refusal of a message over `max_send/receive_message_length`,
 * at either end ("Received message larger than max (N vs. M)", "Sent message
 * larger than max", "Attempted to send message with a size larger than M").
 */
function isSizeLimit(code: Code, details: string | undefined): boolean {
  return (
    code === Code.ResourceExhausted && /message (with a size )?larger than/i.test(details ?? "")
  );
}

// Mirrors MeshError's defaults, so the trailer is only sent when it says something new.
const retryableByDefault = new Set<Code>([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Aborted,
]);

function defaultRetryable(code: Code): boolean {
  return retryableByDefault.has(code);
}

function codeMessage(code: Code): string {
  return `call failed with ${Code[code] ?? code}`;
}
