/**
 * Sandbox refusals as security events (OCSF API Activity, failure): a
 * built-in agent refused what a step asked (a command off the allowlist or
 * arguments its policy refuses; a scheme, host or address the egress policy
 * denies) or stopped it at a sandbox limit (a JSONata evaluation over its
 * time, memory or size). Each event names the tenant, the agent's identity,
 * the goal's trace and the step; never the arguments, URL or input, which
 * may hold a tenant's data. The step fails exactly as before.
 *
 * @example
 * return refusalsReported(ctx, "http", (e) => e.code === "PERMISSION_DENIED", () => fetchIt());
 */
import { emitSecurityEvent } from "../lib/siem/siem.js";
import { type AgentError, isAgentError } from "../sdk/agent/agent-error.js";
import type { SkillContext } from "../sdk/agent/define-agent.js";

/** Sends one sandbox refusal of `agent` (its name, e.g. `shell`) for the step of `ctx`. */
export function reportSandboxRefusal(
  ctx: SkillContext,
  agent: string,
  refusal: { reason: string; code: string; details?: Record<string, unknown> },
): void {
  emitSecurityEvent({
    kind: "sandbox.refusal",
    tenantId: ctx.tenantId,
    // The workload that refused: a built-in agent's certificate identity (`agentmesh agent` and dev alike).
    identity: `agent-${agent}`,
    traceId: ctx.traceId ?? null,
    resource: ctx.capability,
    message: `${ctx.capability} refused by the ${agent} sandbox: ${refusal.reason}`,
    details: {
      ...refusal.details,
      code: refusal.code,
      goalId: ctx.goalId,
      stepId: ctx.stepId,
      attemptId: ctx.attemptId,
    },
  });
}

/** Runs `run`; an `AgentError` that `refused` picks is reported as a sandbox refusal, then thrown on. */
export async function refusalsReported<T>(
  ctx: SkillContext,
  agent: string,
  refused: (err: AgentError) => boolean,
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (isAgentError(err) && refused(err)) {
      reportSandboxRefusal(ctx, agent, {
        reason: err.message,
        code: err.code,
        details: err.details,
      });
    }
    throw err;
  }
}
