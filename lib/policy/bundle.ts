/**
 * A policy bundle as the mesh runs it: the compiled `policy.wasm` and the
 * `data.json` it decides with, shipped as one OPA bundle archive
 * (`bundles/agentmesh.tar.gz`: `/.manifest` with the revision, `/policy.wasm`,
 * `/data.json`, the Rego sources) so code and data always change together.
 * Loading validates it (the module instantiates, exports the decision
 * entrypoint, accepts the data and answers a probe with a well-formed
 * decision) before anything serves from it. A bare `policy.wasm` with
 * `data.json` beside it still loads (older deployments).
 *
 * @example
 * const bundle = await readPolicyBundle("bundles/agentmesh.tar.gz");
 * bundle.evaluate({ peer: { spiffe_id: "spiffe://agentmesh.local/ns/agentmesh/sa/cli" }, ... });
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { type LoadedPolicy, loadPolicy } from "@open-policy-agent/opa-wasm";
import { Code, MeshError } from "../errors/mesh-error.js";
import type { Decision } from "../rpc/authorizer.js";
import { untar } from "./tar.js";

/** The Rego rule every agentmesh bundle must export (`opa build -e`). */
export const decisionEntrypoint = "agentmesh/authz/decision";

/** A validated, ready-to-evaluate bundle. Evaluation is synchronous. */
export interface PolicyBundle {
  /** The manifest's revision (else a content hash of wasm and data): the revision in decision logs and metrics. */
  readonly revision: string;
  /** The data document the policy decides with. */
  readonly data: Readonly<Record<string, unknown>>;
  /** Evaluates the entrypoint; returns the raw result value (undefined when the rule is undefined). */
  evaluate(input: unknown): unknown;
  /** Evaluates the entrypoint and checks the result's shape (a malformed answer denies). */
  decide(input: unknown): Decision;
}

/** Builds a bundle from bytes; throws FAILED_PRECONDITION (with the cause) when invalid. */
export async function loadPolicyBundle(
  wasm: Uint8Array,
  dataJson: Uint8Array | string,
  manifestRevision?: string,
): Promise<PolicyBundle> {
  const revision = manifestRevision || bundleRevision(wasm, dataJson);
  let data: unknown;
  try {
    data = JSON.parse(typeof dataJson === "string" ? dataJson : Buffer.from(dataJson).toString());
  } catch (err) {
    throw invalid(`policy data is not valid JSON: ${errorText(err)}`, err);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw invalid("policy data must be a JSON object");
  }
  let policy: LoadedPolicy;
  try {
    // Copy: the module must not alias a buffer the caller may reuse.
    policy = await loadPolicy(new Uint8Array(wasm));
  } catch (err) {
    throw invalid(`policy.wasm does not load: ${errorText(err)}`, err);
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
    throw invalid(`policy data was rejected: ${errorText(err)}`, err);
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
    throw invalid(`policy fails to evaluate: ${errorText(err)}`, err);
  }
  const decision = parseDecision(probe);
  if (decision === undefined) {
    throw invalid(
      `policy answers an empty input with ${JSON.stringify(probe)}; expected {allow, reason, principal_trusted}`,
    );
  }
  if (decision.allow) throw invalid("policy allows an empty input; refusing a fail-open policy");
  return { revision, data: data as Record<string, unknown>, evaluate, decide };
}

/** An OPA bundle archive's parts, checked: the module for the decision entrypoint, data, revision. */
export function unpackBundleArchive(archive: Uint8Array): {
  wasm: Buffer;
  data: Buffer;
  revision: string;
} {
  let files: Map<string, Buffer>;
  try {
    files = untar(gunzipSync(archive));
  } catch (err) {
    throw invalid(`not a .tar.gz bundle: ${errorText(err)}`, err);
  }
  const manifestText = files.get(".manifest");
  if (manifestText === undefined) throw invalid("the bundle has no /.manifest");
  let manifest: { revision?: unknown; wasm?: { entrypoint?: unknown; module?: unknown }[] };
  try {
    manifest = JSON.parse(manifestText.toString("utf8")) as typeof manifest;
  } catch (err) {
    throw invalid(`/.manifest is not JSON: ${errorText(err)}`, err);
  }
  const entry = manifest.wasm?.find((w) => w.entrypoint === decisionEntrypoint);
  const module = typeof entry?.module === "string" ? entry.module.replace(/^\/+/, "") : "";
  const wasm = module ? files.get(module) : undefined;
  if (wasm === undefined) {
    throw invalid(`/.manifest names no wasm module for ${decisionEntrypoint}`);
  }
  const data = files.get("data.json");
  if (data === undefined) throw invalid("the bundle has no /data.json");
  const revision = typeof manifest.revision === "string" ? manifest.revision : "";
  return { wasm, data, revision };
}

/** Builds a bundle from an OPA bundle archive (`.tar.gz`). */
export function loadBundleArchive(archive: Uint8Array): Promise<PolicyBundle> {
  const { wasm, data, revision } = unpackBundleArchive(archive);
  return loadPolicyBundle(wasm, data, revision);
}

/** Whether a policy path names a bundle archive (else a bare `policy.wasm`). */
export function isBundleArchive(path: string): boolean {
  return path.endsWith(".tar.gz") || path.endsWith(".tgz");
}

/**
 * Reads and validates a bundle: an archive in one read, or (older
 * deployments) a `policy.wasm` with `dataPath`, default `data.json` beside it.
 */
export async function readPolicyBundle(path: string, dataPath?: string): Promise<PolicyBundle> {
  const read = (p: string) =>
    readFile(p).catch((err: unknown) => {
      throw new MeshError(Code.FailedPrecondition, `cannot read policy bundle: ${errorText(err)}`, {
        cause: err,
      });
    });
  if (isBundleArchive(path)) return loadBundleArchive(await read(path));
  const [wasm, data] = await Promise.all([
    read(path),
    read(dataPath ?? join(dirname(path), "data.json")),
  ]);
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

/** The text of anything thrown: opa-wasm throws plain strings ("…rego:3:1: var assignment conflict"). */
export function errorText(err: unknown): string {
  if (typeof err === "string") return err;
  if (err instanceof Error) return err.message;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}
