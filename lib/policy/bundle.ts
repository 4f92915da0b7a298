/**
 * A policy bundle as the mesh runs it: the compiled `policy.wasm` and the
 * `data.json` it decides with. Loading validates both (the module
 * instantiates, exports the decision entrypoint, accepts the data and answers
 * a probe with a well-formed decision) before anything serves from it.
 *
 * @example
 * const bundle = await readPolicyBundle("policies/policy.wasm", "policies/data.json");
 * bundle.evaluate({ peer: { spiffe_id: "spiffe://agentmesh.local/ns/agentmesh/sa/cli" }, ... });
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { type LoadedPolicy, loadPolicy } from "@open-policy-agent/opa-wasm";
import { Code, MeshError } from "../errors/mesh-error.js";
import type { Decision } from "../rpc/authorizer.js";

/** The Rego rule every agentmesh bundle must export (`opa build -e`). */
export const decisionEntrypoint = "agentmesh/authz/decision";

/** A validated, ready-to-evaluate bundle. Evaluation is synchronous. */
export interface PolicyBundle {
  /** Content hash of wasm and data: the policy revision in decision logs and metrics. */
  readonly revision: string;
  /** Evaluates the entrypoint; returns the raw result value (undefined when the rule is undefined). */
  evaluate(input: unknown): unknown;
  /** Evaluates the entrypoint and checks the result's shape (a malformed answer denies). */
  decide(input: unknown): Decision;
}

/** Builds a bundle from bytes; throws FAILED_PRECONDITION (with the cause) when invalid. */
export async function loadPolicyBundle(
  wasm: Uint8Array,
  dataJson: Uint8Array | string,
): Promise<PolicyBundle> {
  const revision = bundleRevision(wasm, dataJson);
  let data: unknown;
  try {
    data = JSON.parse(typeof dataJson === "string" ? dataJson : Buffer.from(dataJson).toString());
  } catch (err) {
    throw invalid(`policy data is not valid JSON: ${(err as Error).message}`, err);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw invalid("policy data must be a JSON object");
  }
  let policy: LoadedPolicy;
  try {
    // Copy: the module must not alias a buffer the caller may reuse.
    policy = await loadPolicy(new Uint8Array(wasm));
  } catch (err) {
    throw invalid(`policy.wasm does not load: ${(err as Error).message}`, err);
  }
  const entrypoints = policy.entrypoints as Record<string, number>;
  const entrypoint = entrypoints[decisionEntrypoint];
  if (entrypoint === undefined) {
    throw invalid(
      `policy.wasm has no ${decisionEntrypoint} entrypoint (has: ${Object.keys(entrypoints).join(", ") || "none"})`,
    );
  }
  try {
    policy.setData(data as object);
  } catch (err) {
    throw invalid(`policy data was rejected: ${(err as Error).message}`, err);
  }

  const evaluate = (input: unknown): unknown => {
    const results = policy.evaluate(input, entrypoint) as { result?: unknown }[] | undefined;
    return results?.[0]?.result;
  };
  const decide = (input: unknown): Decision => toDecision(evaluate(input));

  // Probe: an empty input must produce a well-formed denial.
  let probe: unknown;
  try {
    probe = evaluate({});
  } catch (err) {
    throw invalid(`policy fails to evaluate: ${(err as Error).message}`, err);
  }
  const decision = parseDecision(probe);
  if (decision === undefined) {
    throw invalid(
      `policy answers an empty input with ${JSON.stringify(probe)}; expected {allow, reason, principal_trusted}`,
    );
  }
  if (decision.allow) throw invalid("policy allows an empty input; refusing a fail-open policy");
  return { revision, evaluate, decide };
}

/** Reads and validates the bundle from its files. */
export async function readPolicyBundle(wasmPath: string, dataPath: string): Promise<PolicyBundle> {
  let wasm: Buffer;
  let data: Buffer;
  try {
    [wasm, data] = await Promise.all([readFile(wasmPath), readFile(dataPath)]);
  } catch (err) {
    throw new MeshError(
      Code.FailedPrecondition,
      `cannot read policy bundle: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return loadPolicyBundle(wasm, data);
}

/** Content hash of a bundle's two files: 16 hex digits of SHA-256. */
export function bundleRevision(wasm: Uint8Array, dataJson: Uint8Array | string): string {
  return createHash("sha256").update(wasm).update("\0").update(dataJson).digest("hex").slice(0, 16);
}

/** `{allow, reason, principal_trusted}` from the policy, or undefined when malformed. */
export function parseDecision(value: unknown): Decision | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.allow !== "boolean" || typeof v.reason !== "string") return undefined;
  return { allow: v.allow, reason: v.reason, principalTrusted: v.principal_trusted === true };
}

function toDecision(value: unknown): Decision {
  return (
    parseDecision(value) ?? {
      allow: false,
      reason: "policy returned no well-formed decision",
      principalTrusted: false,
    }
  );
}

function invalid(message: string, cause?: unknown): MeshError {
  return new MeshError(Code.FailedPrecondition, `invalid policy bundle: ${message}`, { cause });
}
