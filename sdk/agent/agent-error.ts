/**
 * Failures a skill handler throws, saying whether trying again may help
 * (after Temporal's `ApplicationFailure`). Anything else a handler throws is
 * treated as retryable, because most unexpected errors are transient.
 *
 * @example
 * if (!input.url.startsWith("https:")) throw nonRetryable("only https URLs are allowed");
 * throw new AgentError("upstream busy", { retryable: true, code: "UPSTREAM_BUSY" });
 */
import { codeName, isMeshError } from "../../lib/errors/mesh-error.js";

export interface AgentErrorOptions {
  /** Machine-readable code for the step result, e.g. `TOOL_ERROR`. Default `HANDLER_ERROR`. */
  code?: string;
  /** Whether another attempt may succeed. Default true. */
  retryable?: boolean;
  /** Structured, caller-safe details. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class AgentError extends Error {
  override readonly name = "AgentError";
  readonly code: string;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(message: string, options: AgentErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? "HANDLER_ERROR";
    this.retryable = options.retryable ?? true;
    this.details = options.details ?? {};
  }

  /** A failure no retry can fix: bad input, a refused operation, a missing resource. */
  static nonRetryable(message: string, options: Omit<AgentErrorOptions, "retryable"> = {}) {
    return new AgentError(message, { ...options, retryable: false });
  }

  /** A transient failure: try again later. */
  static retryable(message: string, options: Omit<AgentErrorOptions, "retryable"> = {}) {
    return new AgentError(message, { ...options, retryable: true });
  }
}

/** Shorthand for `AgentError.nonRetryable`. */
export function nonRetryable(
  message: string,
  options: Omit<AgentErrorOptions, "retryable"> = {},
): AgentError {
  return AgentError.nonRetryable(message, options);
}

/** Type guard that also works across duplicated module copies. */
export function isAgentError(err: unknown): err is AgentError {
  return err instanceof AgentError || (err instanceof Error && err.name === "AgentError");
}

/** What a step result reports about any thrown value. */
export interface FailureInfo {
  code: string;
  message: string;
  retryable: boolean;
  details: Record<string, unknown>;
}

export function failureOf(err: unknown): FailureInfo {
  if (isAgentError(err)) {
    return { code: err.code, message: err.message, retryable: err.retryable, details: err.details };
  }
  if (isMeshError(err)) {
    return {
      code: codeName(err.code),
      message: err.message,
      retryable: err.retryable,
      details: err.details,
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: "HANDLER_ERROR", message, retryable: true, details: {} };
}
