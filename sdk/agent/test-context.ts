/**
 * A `SkillContext` for unit-testing a handler without a bus.
 *
 * @example
 * const out = await agent.skills["text.stats"]!.handler({ text: "Hi." }, testSkillContext());
 */
import { randomBytes } from "node:crypto";
import { createLogger } from "../../lib/log/logger.js";
import type { SkillContext } from "./define-agent.js";

export function testSkillContext(overrides: Partial<SkillContext> = {}): SkillContext {
  return {
    attemptId: `a${randomBytes(5).toString("hex")}`,
    idempotencyKey: "g-test/s-test/0",
    goalId: "g-test",
    tenantId: "t-test",
    stepId: "s-test",
    capability: "test",
    attempt: 1,
    delivery: 1,
    deadline: new Date(Date.now() + 300_000),
    signal: new AbortController().signal,
    log: createLogger({ name: "skill-test" }),
    working: () => {},
    ...overrides,
  };
}
