/**
 * Maps whatever the database layer throws (pg errors, MikroORM driver
 * exceptions, socket errors, pool timeouts) onto a `MeshError` with the code a
 * caller can act on. Repositories catch the expected cases themselves (a
 * unique violation on create means ALREADY_EXISTS, a foreign key violation
 * means the tenant is unknown); this is the catch-all at the boundary.
 *
 * @example
 * try { await em.execute(sql) } catch (err) { throw toStoreError(err) }
 */
import { Code, isMeshError, MeshError } from "../errors/mesh-error.js";

/** Socket-level error codes that mean "the database is not reachable". */
const unreachable = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ECONNABORTED",
]);

/** Messages of pg and knex errors that carry no code but mean the connection is gone. */
const unreachableMessages = [
  /Connection terminated/i,
  /Timeout acquiring a connection/i,
  /timeout exceeded when trying to connect/i,
  // pg's own connect timeout (connectionTimeoutMillis): no connection came up in time.
  /^timeout expired$/i,
  /Client has encountered a connection error/i,
  /Connection ended unexpectedly/i,
  /Client was closed and is not queryable/i,
  // knex, when the connection died under an open transaction (a retry opens a new one).
  /Transaction query already complete/i,
];

/** The SQLSTATE of a pg or MikroORM error, or the errno code of a socket error. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/** Whether the error means the database cannot be reached (as opposed to rejecting the query). */
export function isUnavailable(err: unknown): boolean {
  if (isMeshError(err)) return err.code === Code.Unavailable;
  const code = errorCode(err);
  if (code !== undefined) {
    if (unreachable.has(code)) return true;
    // 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now; 53300: too many connections.
    if (code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03") {
      return true;
    }
    if (code === "53300") return true;
  }
  const message = err instanceof Error ? err.message : String(err);
  if (unreachableMessages.some((re) => re.test(message))) return true;
  const cause = (err as { cause?: unknown })?.cause;
  return cause !== undefined && cause !== err && isUnavailable(cause);
}

/** Normalises a database error into a MeshError; a MeshError passes through. */
export function toStoreError(err: unknown): MeshError {
  if (isMeshError(err)) return err as MeshError;
  if (isUnavailable(err)) {
    return new MeshError(Code.Unavailable, "database unavailable", { cause: err });
  }
  const code = errorCode(err) ?? "";
  const detail = err instanceof Error ? err.message : String(err);
  switch (true) {
    case code === "40001" || code === "40P01" || code === "55P03":
      // serialization failure, deadlock, lock not available: the same call may succeed.
      return new MeshError(Code.Aborted, "concurrent update conflict, retry", { cause: err });
    case code === "57014":
      return new MeshError(Code.DeadlineExceeded, "database statement timed out", { cause: err });
    case code === "23505":
      return new MeshError(Code.AlreadyExists, "already exists", { cause: err });
    case code === "23503":
      return new MeshError(Code.FailedPrecondition, "referenced row does not exist", {
        cause: err,
      });
    case code === "23502" || code === "23514" || code.startsWith("22"):
      // not null, check constraint, data exception (bad text, NUL byte, out of range ...)
      return new MeshError(Code.InvalidArgument, `invalid value: ${firstLine(detail)}`, {
        cause: err,
      });
    default:
      return new MeshError(Code.Internal, "database error", { cause: err });
  }
}

function firstLine(message: string): string {
  // pg messages start with the SQL text when raised through knex; keep the reason only.
  const parts = message.split(" - ");
  return (parts[parts.length - 1] ?? message).split("\n")[0] ?? message;
}
