/**
 * Capability names: lowercase words joined by dots, e.g. `text.summarize` or
 * `mcp.everything.echo`. They become NATS subject tokens
 * (`agentmesh.jobs.<capability>`) and policy grants, so the alphabet is narrow.
 * The rule is the contract's (`Skill.capability` in `registry.proto`).
 *
 * @example
 * isCapabilityName("text.summarize"); // true
 * isCapabilityName("Text Summarize"); // false
 */

import { isName, nameProblem, nameRules } from "../proto/name-rules.js";

/** Longest capability name accepted; subjects and durable names stay short. */
export const MAX_CAPABILITY_LENGTH = nameRules.capability.maxLen;

/** Whether `name` is a well-formed capability name. */
export function isCapabilityName(name: string): boolean {
  return isName(nameRules.capability, name);
}

/** Why `name` is not a capability name, or undefined when it is one. */
export function capabilityNameProblem(name: string): string | undefined {
  return nameProblem(nameRules.capability, name);
}
