/**
 * The reload corpus: inputs a bundle must answer (with a well-formed
 * decision, without an evaluation error) before it may serve. A bundle that
 * compiles and denies an empty input can still fail on real calls (two
 * `decision` rules that conflict for one tenant, a type error on one
 * method's input); the corpus finds that before the swap instead of in
 * production.
 *
 * It holds, from the mesh's descriptors and the bundle's own data, one call
 * of every method by every identity the data names (services, agents, the
 * gateway with a principal of every role, a stranger), every capability
 * the data grants on the methods that name capabilities, and the dispatch
 * action for each of them; plus the inputs of recently recorded decisions
 * (the decision log), so the traffic the mesh really sees is replayed too.
 *
 * @example
 * checkCorpus(bundle, [...builtinCorpus(bundle.data), ...(await readRecordedInputs(logPath))]);
 */
import { open } from "node:fs/promises";
import { Code, MeshError } from "../errors/mesh-error.js";
import { dispatchInput } from "./actions.js";
import { errorText, type PolicyBundle, parseDecision } from "./bundle.js";
import { buildPolicyInput, type PolicyInput } from "./input.js";
import { meshMethods, meshPeer, principal, sampleRequest } from "./samples.js";

interface MeshConfigData {
  trust_domain?: string;
  mesh_identities?: string[];
  agent_capabilities?: Record<string, string[]>;
  agent_capability_prefixes?: Record<string, string[]>;
  roles?: Record<string, unknown>;
}

/** One concrete capability for a grant pattern: `text.*` → `text.corpus`, `*` → `corpus`. */
function concrete(pattern: string): string {
  return pattern === "*"
    ? "corpus"
    : pattern.endsWith(".*")
      ? `${pattern.slice(0, -1)}corpus`
      : pattern;
}

/** The corpus the descriptors and the bundle's data give (no I/O). */
export function builtinCorpus(
  data: Readonly<Record<string, unknown>>,
  now = Date.now(),
): unknown[] {
  const config = ((data.agentmesh as { config?: MeshConfigData } | undefined)?.config ??
    {}) as MeshConfigData;
  const trustDomain = config.trust_domain ?? "agentmesh.local";
  const peer = (name: string) => meshPeer(name, trustDomain);
  const agents = [
    ...Object.keys(config.agent_capabilities ?? {}),
    ...Object.keys(config.agent_capability_prefixes ?? {}).map((p) => `${p}corpus`),
  ];
  const capabilities = [
    ...new Set(
      [
        ...Object.values(config.agent_capabilities ?? {}).flat(),
        ...Object.values(config.agent_capability_prefixes ?? {})
          .flat()
          .map((t) => t.replace("{suffix}", "corpus")),
      ].map(concrete),
    ),
  ];
  const callers = [
    ...(config.mesh_identities ?? []).map((name) => ({ peer: peer(name), principal: undefined })),
    ...agents.map((name) => ({ peer: peer(name), principal: undefined })),
    { peer: peer("intruder"), principal: undefined },
    { peer: meshPeer("gateway", "foreign.example"), principal: undefined },
    ...Object.keys(config.roles ?? {}).map((role) => ({
      peer: peer("gateway"),
      principal: principal("acme", "corpus", [role]),
    })),
  ];
  const inputs: unknown[] = [{}];
  for (const method of meshMethods) {
    const named = sampleRequest(method);
    const plan = buildPolicyInput(
      { peer: undefined, principal: undefined, method, request: named },
      now,
    );
    const variants = [named];
    if (plan.resource.capability !== undefined || plan.resource.capabilities !== undefined) {
      for (const c of capabilities)
        variants.push(sampleRequest(method, { capability: c, capabilities: [c] }));
    }
    for (const caller of callers) {
      for (const request of variants) {
        inputs.push(buildPolicyInput({ ...caller, method, request }, now));
      }
    }
  }
  for (const capability of capabilities) {
    inputs.push(
      dispatchInput(
        {
          executor: peer("executor"),
          tenantId: "acme",
          goalId: "g-1",
          goalKind: "summarize",
          capability,
          stepId: "corpus",
          attempt: 1,
          submittedBy: "acme/key:corpus",
        },
        now,
      ),
    );
  }
  return inputs;
}

/**
 * The inputs of the last decisions in a decision log (or shadow log) file,
 * newest last: at most `max`, read from its last `maxBytes`. A missing or
 * unreadable file gives none.
 */
export async function readRecordedInputs(
  path: string,
  { max = 500, maxBytes = 1 << 20 } = {},
): Promise<unknown[]> {
  let text: string;
  try {
    const file = await open(path, "r");
    try {
      const { size } = await file.stat();
      const start = Math.max(0, size - maxBytes);
      const buf = Buffer.alloc(size - start);
      await file.read(buf, 0, buf.length, start);
      text = buf.toString("utf8");
      // The first line may be cut in half.
      if (start > 0) text = text.slice(text.indexOf("\n") + 1);
    } finally {
      await file.close();
    }
  } catch {
    return [];
  }
  const inputs: unknown[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    try {
      const entry = JSON.parse(line) as { input?: unknown };
      if (typeof entry.input === "object" && entry.input !== null) inputs.push(entry.input);
    } catch {
      // A line being written, or not ours: skip it.
    }
  }
  return inputs.slice(-max);
}

/**
 * Evaluates every input; throws FAILED_PRECONDITION naming the first input
 * the bundle errors on or answers with a malformed decision. Returns how many
 * inputs were checked.
 */
export function checkCorpus(bundle: PolicyBundle, inputs: readonly unknown[]): number {
  for (const input of inputs) {
    let result: unknown;
    try {
      result = bundle.evaluate(input);
    } catch (err) {
      throw rejected(input, `fails to evaluate: ${errorText(err)}`, err);
    }
    if (parseDecision(result) === undefined) {
      throw rejected(
        input,
        `answers ${JSON.stringify(result) ?? "undefined"}; expected {allow, reason, principal_trusted}`,
      );
    }
  }
  return inputs.length;
}

function rejected(input: unknown, what: string, cause?: unknown): MeshError {
  const i = input as Partial<PolicyInput>;
  const call = i.method?.full
    ? `${i.method.full} by ${i.peer?.spiffe_id ?? "no peer"}${i.principal ? ` for ${i.principal.tenant_id}/${i.principal.subject}` : ""}`
    : "an empty input";
  return new MeshError(
    Code.FailedPrecondition,
    `invalid policy bundle: policy ${what} (on ${call})`,
    {
      cause,
    },
  );
}
