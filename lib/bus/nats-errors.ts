/**
 * NATS refusals as the mesh's errors. A permissions violation is a
 * configuration fact, not a passing fault: retrying cannot help until the
 * grants (policies/data.json) and the server's configuration
 * (`agentmesh nats config`) change, so it is PERMISSION_DENIED, not retryable,
 * and says which subject was refused and which grant would allow it.
 *
 * @example
 * throw jobConsumeError(err, { identity: "agent-text", capability: "shell.exec" });
 */
import { Code, MeshError } from "../errors/mesh-error.js";

/** The refused operation and subject of a NATS permissions violation anywhere in `err`'s cause chain. */
export function permissionViolationOf(
  err: unknown,
): { operation: "publish" | "subscription"; subject: string } | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const m = /Permissions Violation for (Publish|Subscription) to "([^"]+)"/i.exec(e.message);
    if (m) {
      return {
        operation: m[1]!.toLowerCase() === "publish" ? "publish" : "subscription",
        subject: m[2]!,
      };
    }
  }
  return undefined;
}

/** Whether JetStream answered "stream not found" (API error 10059). */
export function isStreamNotFound(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e.name === "StreamNotFoundError") return true;
    if ((e as { code?: unknown }).code === 10059) return true;
  }
  return false;
}

/**
 * Why consuming `capability`'s jobs failed: PERMISSION_DENIED (not retryable)
 * naming the refused subject and the grant to add when the server refused it,
 * else UNAVAILABLE.
 */
export function jobConsumeError(
  err: unknown,
  where: { identity: string | undefined; capability: string },
): MeshError {
  const violation = permissionViolationOf(err);
  if (!violation) return MeshError.from(err, Code.Unavailable);
  const who = where.identity ?? "this client";
  return new MeshError(
    Code.PermissionDenied,
    `${who} may not consume ${where.capability} jobs: NATS refused ${violation.operation} to "${violation.subject}". ` +
      `Grant ${where.capability} to ${who} in policies/data.json (agent_capabilities), ` +
      `regenerate the server configuration with \`agentmesh nats config\` ` +
      `(with --capability ${where.capability} when no built-in agent offers it) and reload nats-server`,
    {
      cause: err,
      retryable: false,
      details: {
        capability: where.capability,
        identity: who,
        subject: violation.subject,
        operation: violation.operation,
      },
    },
  );
}
