/**
 * Capability names: lowercase words joined by dots, e.g. `text.summarize` or
 * `mcp.everything.echo`. They become NATS subject tokens
 * (`agentmesh.jobs.<capability>`) and policy grants, so the alphabet is narrow.
 *
 * @example
 * isCapabilityName("text.summarize"); // true
 * isCapabilityName("Text Summarize"); // false
 */

/** Longest capability name accepted; subjects and durable names stay short. */
export const MAX_CAPABILITY_LENGTH = 128;

const capabilityPattern = /^[a-z][a-z0-9_-]*(?:\.[a-z][a-z0-9_-]*)*$/;

/** Whether `name` is a well-formed capability name. */
export function isCapabilityName(name: string): boolean {
  return name.length <= MAX_CAPABILITY_LENGTH && capabilityPattern.test(name);
}

/** Why `name` is not a capability name, or undefined when it is one. */
export function capabilityNameProblem(name: string): string | undefined {
  if (name === "") return "capability is empty";
  if (name.length > MAX_CAPABILITY_LENGTH) {
    return `capability is longer than ${MAX_CAPABILITY_LENGTH} characters`;
  }
  if (!capabilityPattern.test(name)) {
    return `capability "${name}" must be lowercase words separated by dots, e.g. "text.summarize"`;
  }
  return undefined;
}
