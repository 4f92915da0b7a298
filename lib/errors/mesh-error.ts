/**
 * The one error type of the mesh.
 *
 * Every failure that crosses a boundary (RPC, job bus, CLI) is a `MeshError`
 * with a status code whose numbers are gRPC's (Connect uses the same ones), so
 * it is mapped once at each edge and nowhere else.
 *
 * @example
 * throw new MeshError(Code.NotFound, `goal ${id} not found`);
 * throw MeshError.from(err); // normalise anything thrown
 */

/** Status codes, numerically identical to gRPC and Connect codes. */
export enum Code {
  Ok = 0,
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
}

/** Codes that mean "the same call may succeed later". */
const retryableCodes = new Set<Code>([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Aborted,
]);

export interface MeshErrorOptions {
  /** Structured, caller-safe details (validation errors, missing capabilities, ...). */
  details?: Record<string, unknown>;
  /** The underlying error; logged, never sent to callers. */
  cause?: unknown;
  /** Overrides the code's default retryability. */
  retryable?: boolean;
}

export class MeshError extends Error {
  override readonly name = "MeshError";
  readonly code: Code;
  readonly details: Record<string, unknown>;
  readonly retryable: boolean;

  constructor(code: Code, message: string, options: MeshErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    this.retryable = options.retryable ?? retryableCodes.has(code);
  }

  /** The code's name in the SCREAMING_SNAKE form gRPC tools print, e.g. `NOT_FOUND`. */
  get codeName(): string {
    return codeName(this.code);
  }

  /**
   * Normalises anything thrown into a MeshError. A MeshError passes through;
   * an error carrying a numeric gRPC `code` keeps it; anything else becomes
   * INTERNAL with a generic message (the original stays in `cause` for logs).
   */
  static from(err: unknown, fallback: Code = Code.Internal): MeshError {
    if (err instanceof MeshError) return err;
    if (isGrpcLike(err)) {
      return new MeshError(err.code as Code, err.details || err.message || codeName(err.code), {
        cause: err,
      });
    }
    if (err instanceof Error && err.name === "AbortError") {
      return new MeshError(Code.Canceled, "operation was cancelled", { cause: err });
    }
    return new MeshError(fallback, fallback === Code.Internal ? "internal error" : String(err), {
      cause: err,
    });
  }
}

/** Type guard that also works across duplicated module copies. */
export function isMeshError(err: unknown): err is MeshError {
  return err instanceof MeshError || (err instanceof Error && err.name === "MeshError");
}

/** `Code.NotFound` → `NOT_FOUND`. */
export function codeName(code: number): string {
  const name = Code[code];
  if (name === undefined) return `CODE_${code}`;
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

interface GrpcLike {
  code: number;
  details?: string;
  message?: string;
}

function isGrpcLike(err: unknown): err is GrpcLike {
  if (typeof err !== "object" || err === null) return false;
  const code = (err as { code?: unknown }).code;
  return typeof code === "number" && code >= 0 && code <= 16;
}
