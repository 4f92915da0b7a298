/**
 * The tool catalog: every capability the given agents offer and every goal
 * kind of the given playbooks, as JSON (`catalogJson`) and as Markdown
 * (`renderCatalogMarkdown`). Built from definitions alone (no running mesh),
 * so the built-in catalog is a file in the repository that a test keeps
 * current. Per capability: the agent, its version and owner, description,
 * tags, concurrency, input and output JSON Schemas, the scope a goal's
 * principal needs, the rate limit per tenant, the declared side effect and
 * the reliability the registry measured (null when built offline, as the
 * committed catalog is) and the signer the card names (ADR-015; the registry
 * verifies it at registration); per goal kind: its description, input schema,
 * strategies, the capabilities their steps need and the version ranges they state.
 *
 * @example
 * const catalog = buildCatalog(Object.values(builtinAgents).map((a) => a()), await loadPlaybookDir(dir));
 * writeFileSync("catalog.md", renderCatalogMarkdown(catalog));
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Playbook } from "../../gen/agentmesh/v1/planner_pb.js";
import type { AgentDefinition } from "../../sdk/agent/define-agent.js";

export interface CatalogCapability {
  capability: string;
  agent: string;
  version: string;
  owner: string;
  description: string;
  tags: string[];
  maxConcurrency: number | null;
  /** Scope the goal's principal must hold; "" for none. */
  authScope: string;
  /** Dispatches per second per tenant across the mesh; null: unlimited. */
  rateLimit: { perSecond: number; burst: number } | null;
  /** `read_only`, `idempotent`, `destructive`; "" when not declared. */
  sideEffect: string;
  /** Success score in [0, 1] from the registry (best live agent); null when not measured. */
  reliability: number | null;
  /** Signer of the agent's card as the definition ships it (ADR-015); "" when unsigned. */
  signer: string;
  inputSchema: JsonValue;
  outputSchema: JsonValue | null;
}

export interface CatalogGoalKind {
  goalKind: string;
  description: string;
  inputSchema: JsonValue;
  strategies: {
    name: string;
    description: string;
    capabilities: string[];
    subGoals: string[];
    /** Capability → the semver range its steps require of the agent's version (ADR-015). */
    versionRanges: Record<string, string>;
  }[];
}

export interface Catalog {
  capabilities: CatalogCapability[];
  goalKinds: CatalogGoalKind[];
}

export function buildCatalog(
  agents: readonly AgentDefinition[],
  playbooks: readonly Playbook[],
  /** The registry's reliability of a capability, when built against a running mesh. */
  reliability: (capability: string) => number | undefined = () => undefined,
): Catalog {
  const capabilities: CatalogCapability[] = [];
  for (const agent of agents) {
    for (const [capability, skill] of Object.entries(agent.skills)) {
      capabilities.push({
        capability,
        agent: agent.name,
        version: agent.version,
        owner: agent.owner ?? "",
        description: skill.description,
        tags: [...(skill.tags ?? [])],
        maxConcurrency: skill.maxConcurrency ?? null,
        authScope: skill.authScope ?? "",
        rateLimit: skill.rateLimit
          ? { perSecond: skill.rateLimit.perSecond, burst: skill.rateLimit.burst }
          : null,
        sideEffect: skill.sideEffect ?? "",
        reliability: reliability(capability) ?? null,
        signer: agent.signature?.signer ?? "",
        inputSchema: (skill.inputSchema ?? { type: "object" }) as JsonValue,
        outputSchema: (skill.outputSchema ?? null) as JsonValue | null,
      });
    }
  }
  capabilities.sort((a, b) => a.capability.localeCompare(b.capability));
  const goalKinds = playbooks
    .map((p) => ({
      goalKind: p.goalKind,
      description: p.description,
      inputSchema: (p.inputSchema ?? { type: "object" }) as JsonObject,
      strategies: p.strategies.map((s) => ({
        name: s.name,
        description: s.description,
        capabilities: [...new Set(s.steps.map((st) => st.capability).filter(Boolean))].sort(),
        subGoals: [...new Set(s.steps.map((st) => st.subGoal?.kind ?? "").filter(Boolean))].sort(),
        versionRanges: Object.fromEntries(
          s.steps
            .filter((st) => st.capability !== "" && st.versionRange !== "")
            .map((st) => [st.capability, st.versionRange] as const)
            .sort(([a], [b]) => a.localeCompare(b)),
        ),
      })),
    }))
    .sort((a, b) => a.goalKind.localeCompare(b.goalKind));
  return { capabilities, goalKinds };
}

/** The catalog as one JSON document (stable key order, two-space indent, trailing newline). */
export function catalogJson(catalog: Catalog): string {
  return `${JSON.stringify(catalog, null, 2)}\n`;
}

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\s*\n\s*/g, " ");
const schemaBlock = (schema: JsonValue | null) =>
  schema === null
    ? "_not declared_\n"
    : `\n\`\`\`json\n${JSON.stringify(schema, null, 2)}\n\`\`\`\n`;

/** The catalog as Markdown: an index table of each, then one section per capability and goal kind. */
export function renderCatalogMarkdown(catalog: Catalog): string {
  const out: string[] = [
    "# Tool catalog",
    "",
    "Generated by `agentmesh catalog`; do not edit. Capabilities of the built-in agents and the",
    "built-in goal kinds (playbooks).",
    "",
    "## Capabilities",
    "",
    "| capability | agent | version | owner | side effect | scope | rate limit | description |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const c of catalog.capabilities) {
    out.push(
      `| [\`${c.capability}\`](#${anchor(c.capability)}) | ${c.agent} | ${c.version} | ${c.owner || "—"} | ${sideEffectLabel(c.sideEffect)} | ${c.authScope ? `\`${c.authScope}\`` : "—"} | ${rateLabel(c.rateLimit)} | ${cell(c.description)} |`,
    );
  }
  out.push(
    "",
    "## Goal kinds",
    "",
    "| goal kind | description | capabilities |",
    "| --- | --- | --- |",
  );
  for (const g of catalog.goalKinds) {
    const caps = [...new Set(g.strategies.flatMap((s) => s.capabilities))].sort();
    out.push(
      `| [\`${g.goalKind}\`](#${anchor(`goal ${g.goalKind}`)}) | ${cell(g.description)} | ${caps.map((c) => `\`${c}\``).join(", ")} |`,
    );
  }
  for (const c of catalog.capabilities) {
    out.push(
      "",
      `### ${c.capability}`,
      "",
      cell(c.description),
      "",
      `- agent: \`${c.agent}\` ${c.version}${c.owner ? `, owner ${c.owner}` : ""}`,
      `- tags: ${c.tags.length ? c.tags.join(", ") : "—"}`,
      `- concurrency per agent process: ${c.maxConcurrency ?? "the agent's default"}`,
      `- side effect: ${sideEffectLabel(c.sideEffect)}`,
      `- scope a goal's principal needs: ${c.authScope ? `\`${c.authScope}\`` : "none"}`,
      `- rate limit per tenant across the mesh: ${rateLabel(c.rateLimit)}`,
      `- reliability: ${c.reliability === null ? "not measured (generated offline)" : c.reliability.toFixed(2)}`,
      `- card signer: ${c.signer ? `\`${c.signer}\` (verified by the registry at registration)` : "unsigned"}`,
      "",
      `Input schema:${schemaBlock(c.inputSchema)}`,
      `Output schema: ${schemaBlock(c.outputSchema)}`.replace(
        "Output schema: \n",
        "Output schema:\n",
      ),
    );
  }
  for (const g of catalog.goalKinds) {
    out.push("", `### goal ${g.goalKind}`, "", cell(g.description), "");
    for (const s of g.strategies) {
      const uses = [
        ...s.capabilities.map((c) =>
          s.versionRanges[c] ? `\`${c}\` ${s.versionRanges[c]}` : `\`${c}\``,
        ),
        ...s.subGoals.map((k) => `goal \`${k}\``),
      ];
      out.push(
        `- strategy \`${s.name}\`${s.description ? `: ${cell(s.description)}` : ""} (uses ${uses.join(", ") || "nothing"})`,
      );
    }
    out.push("", `Input schema:${schemaBlock(g.inputSchema)}`);
  }
  return `${out
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd()}\n`;
}

const sideEffectLabel = (s: string) => (s === "" ? "not declared" : s.replace("_", "-"));
const rateLabel = (r: CatalogCapability["rateLimit"]) =>
  r === null ? "none" : `${r.perSecond}/s, burst ${r.burst}`;

/** GitHub's heading anchor. */
function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, "")
    .replace(/ /g, "-");
}
