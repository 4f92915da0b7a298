// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step templates
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  create,
  equals,
  fromJson,
  type JsonObject,
  type JsonValue,
  toJson,
} from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import {
  type Playbook,
  PlaybookSchema,
  StepSchema,
  StrategySchema,
} from "../../../gen/agentmesh/v1/planner_pb.js";
import { Code, type MeshError } from "../../../lib/errors/mesh-error.js";
import { findCycle, topologicalOrder } from "./dag.js";
import { parseDuration } from "./duration.js";
import { validateGoalInput } from "./input-schema.js";
import { builtinPlaybookDir, loadPlaybookDir } from "./load-playbooks.js";
import { parsePlaybookYaml } from "./playbook-file.js";
import { validatePlaybook } from "./validate-playbook.js";
import { formatPath } from "./violation.js";

function thrown(fn: () => unknown): MeshError {
  try {
    fn();
  } catch (err) {
    return err as MeshError;
  }
  throw new Error("expected an error");
}

async function rejected(p: Promise<unknown>): Promise<MeshError> {
  try {
    await p;
  } catch (err) {
    return err as MeshError;
  }
  throw new Error("expected a rejection");
}

const minimal = (steps: string) => `goal_kind: demo
strategies:
  - name: only
    steps:
${steps}`;

describe("built-in playbooks", () => {
  it("load and validate", async () => {
    const playbooks = await loadPlaybookDir(builtinPlaybookDir);
    const kinds = playbooks.map((p) => p.goalKind);
    expect(kinds).toEqual(["analyze-text", "echo", "flaky-demo", "research", "summarize", "wait"]);
    const summarize = playbooks.find((p) => p.goalKind === "summarize")!;
    expect(summarize.strategies.map((s) => s.name)).toEqual(["solo", "committee"]);
    const committee = summarize.strategies[1]!;
    expect(committee.collaborative).toBe(true);
    expect(committee.steps[0]!.replicas).toBe(3);
    const solo = summarize.strategies[0]!.steps[0]!;
    expect(durationMs(solo.retry!.initialBackoff!)).toBe(200);
    expect(durationMs(solo.timeout!)).toBe(30_000);
    const research = playbooks.find((p) => p.goalKind === "research")!;
    expect(research.strategies[0]!.steps[1]!.subGoal?.kind).toBe("summarize");
    const analyze = playbooks.find((p) => p.goalKind === "analyze-text")!;
    expect(analyze.strategies[0]!.steps[3]!.dependsOn).toEqual(["stats", "keywords", "summary"]);
  });
});

describe("one playbook format: the proto JSON form of Playbook", () => {
  const replicasOne = (p: Playbook) => {
    for (const s of p.strategies) for (const step of s.steps) step.replicas ||= 1;
    return p;
  };

  it("every built-in file is read the same by protobuf's fromJson, and `show` output reads back", async () => {
    const files = (await readdir(builtinPlaybookDir)).filter((n) => n.endsWith(".yaml"));
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) {
      const text = await readFile(join(builtinPlaybookDir, file), "utf8");
      const read = parsePlaybookYaml(text, file);
      const viaProto = replicasOne(fromJson(PlaybookSchema, parseYaml(text) as JsonValue));
      expect(equals(PlaybookSchema, viaProto, read), file).toBe(true);
      const shown = stringifyYaml(toJson(PlaybookSchema, read));
      expect(equals(PlaybookSchema, parsePlaybookYaml(shown, file), read), file).toBe(true);
    }
  });

  it("also reads proto field names and the older spellings, and refuses a field written twice", () => {
    const canonical = parsePlaybookYaml(
      `goalKind: demo
strategies:
  - name: only
    outputStep: b
    steps:
      - { stepId: a, capability: util.echo, timeout: 0.2s, retry: { maxAttempts: 3, initialBackoff: 0.2s, backoffMultiplier: 2 } }
      - { stepId: b, capability: util.echo, dependsOn: [a], timeout: 120s }`,
      "canonical.yaml",
    );
    const older = parsePlaybookYaml(
      `goal_kind: demo
strategies:
  - name: only
    output_step: b
    steps:
      - { id: a, capability: util.echo, timeout: 200ms, retry: { max_attempts: 3, initial_backoff: 200ms, multiplier: 2 } }
      - { step_id: b, capability: util.echo, depends_on: [a], timeout: 2m }`,
      "older.yaml",
    );
    expect(equals(PlaybookSchema, canonical, older)).toBe(true);
    const twice = thrown(() =>
      parsePlaybookYaml(
        minimal("      - { id: a, stepId: a, capability: util.echo }"),
        "twice.yaml",
      ),
    );
    expect(twice.message).toMatch(
      /"stepId" and "id" are the same field; write it once \(as "stepId"\)/,
    );
  });
});

describe("playbook files", () => {
  it("parse durations", () => {
    expect(parseDuration("200ms")).toBe(200);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("2m")).toBe(120_000);
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration("2 sec")).toBeUndefined();
    expect(parseDuration(-1)).toBeUndefined();
  });

  it("name the file, the field path and the line of a bad field", () => {
    const err = thrown(() =>
      parsePlaybookYaml(
        minimal(`      - id: a
        capability: util.echo
        retry: { initial_backoff: soon }
        replicas: 0
        tmeout: 3s`),
        "demo.yaml",
      ),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toContain("demo.yaml");
    const violations = err.details.violations as Array<{ path: string; line?: number }>;
    expect(violations.map((v) => v.path).sort()).toEqual([
      "strategies[0].steps[0].replicas",
      "strategies[0].steps[0].retry.initial_backoff",
      "strategies[0].steps[0].tmeout",
    ]);
    expect(violations.find((v) => v.path.endsWith("replicas"))?.line).toBe(8);
    expect(err.message).toMatch(/tmeout \(line 9\): unknown field/);
  });

  it("report YAML syntax errors with a line", () => {
    const err = thrown(() => parsePlaybookYaml("goal_kind: x\nstrategies: [\n", "bad.yaml"));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toContain("bad.yaml");
  });

  it("report semantic errors with the line of the field", () => {
    const err = thrown(() =>
      parsePlaybookYaml(
        minimal(`      - id: a
        capability: util.echo
        depends_on: [b]
      - id: b
        capability: util.echo
        depends_on: [a]`),
        "cycle.yaml",
      ),
    );
    expect(err.message).toMatch(/dependency cycle: a → b → a/);
    expect(err.message).toMatch(/cycle\.yaml/);
  });

  it("collect the errors of every file of a directory and reject duplicate kinds", async () => {
    const dir = await mkdtemp(join(tmpdir(), "playbooks-"));
    try {
      await writeFile(join(dir, "a.yaml"), minimal("      - id: a\n        capability: BAD"));
      await writeFile(join(dir, "b.yml"), "goal_kind: [\n");
      let err = await rejected(loadPlaybookDir(dir));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.message).toContain("a.yaml");
      expect(err.message).toContain("b.yml");
      await writeFile(join(dir, "a.yaml"), minimal("      - id: a\n        capability: util.echo"));
      await writeFile(join(dir, "b.yml"), minimal("      - id: a\n        capability: util.echo"));
      err = await rejected(loadPlaybookDir(dir));
      expect(err.message).toMatch(/already defined in .*a\.yaml/);
      expect((await rejected(loadPlaybookDir(join(dir, "nope")))).code).toBe(Code.NotFound);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

function playbook(
  steps: Array<{
    id: string;
    capability?: string;
    dependsOn?: string[];
    input?: Record<string, string>;
    replicas?: number;
  }>,
  extra: { inputSchema?: JsonObject } = {},
): Playbook {
  return create(PlaybookSchema, {
    goalKind: "demo",
    strategies: [
      create(StrategySchema, {
        name: "only",
        steps: steps.map((s) =>
          create(StepSchema, {
            stepId: s.id,
            capability: s.capability ?? "util.echo",
            dependsOn: s.dependsOn ?? [],
            input: s.input,
            replicas: s.replicas ?? 1,
          }),
        ),
      }),
    ],
    ...extra,
  });
}

const messages = (p: Playbook) =>
  validatePlaybook(p).map((v) => `${formatPath(v.path)}: ${v.message}`);

describe("playbook validation", () => {
  it("accepts a valid DAG", () => {
    expect(
      messages(
        playbook([
          { id: "a", input: { t: "${input.text}" } },
          { id: "b", dependsOn: ["a"], input: { t: "${steps.a.output.x}" } },
          { id: "c", dependsOn: ["b"], input: { t: "from ${steps.a.output}" } },
        ]),
      ),
    ).toEqual([]);
  });

  it("rejects duplicate ids, unknown references, self loops and bad names", () => {
    const m = messages(
      playbook([
        { id: "a", capability: "Text.Summarize" },
        { id: "a" },
        { id: "b", dependsOn: ["zzz", "b"] },
        { id: "has.dot", replicas: 99 },
      ]),
    );
    expect(m).toContainEqual(expect.stringMatching(/steps\[0\]\.capability: capability "Text/));
    expect(m).toContainEqual('strategies[0].steps[1].id: duplicate step id "a"');
    expect(m).toContainEqual('strategies[0].steps[2].depends_on[0]: unknown step "zzz"');
    expect(m).toContainEqual('strategies[0].steps[2].depends_on[1]: step "b" depends on itself');
    expect(m).toContainEqual(expect.stringMatching(/steps\[3\]\.id: step id "has.dot"/));
    expect(m).toContainEqual(expect.stringMatching(/steps\[3\]\.replicas: replicas must be/));
  });

  it("reports the cycle", () => {
    const m = messages(
      playbook([
        { id: "a", dependsOn: ["c"] },
        { id: "b", dependsOn: ["a"] },
        { id: "c", dependsOn: ["b"] },
      ]),
    );
    expect(m).toEqual([expect.stringMatching(/dependency cycle: a → c → b → a/)]);
  });

  it("only lets templates read steps the step depends on", () => {
    const m = messages(
      playbook([
        { id: "a" },
        { id: "b", input: { t: "${steps.a.output.x}" } },
        { id: "c", dependsOn: ["b"], input: { t: "${steps.nope.output}", u: "${oops}" } },
      ]),
    );
    expect(m).toContainEqual(
      'strategies[0].steps[1].input.t: ${steps.a.output.x} reads step "a", which step "b" does not depend on',
    );
    expect(m).toContainEqual(expect.stringMatching(/steps\[2\]\.input.t: .*unknown step "nope"/));
    expect(m).toContainEqual(expect.stringMatching(/steps\[2\]\.input.u: bad template \$\{oops\}/));
  });

  it("rejects a broken input schema and empty playbooks", () => {
    const m = messages(
      playbook([], { inputSchema: { type: "object", properties: { a: { type: "nonsense" } } } }),
    );
    expect(m).toContainEqual(expect.stringMatching(/^input_schema: invalid JSON Schema/));
    expect(m).toContainEqual("strategies[0].steps: at least one step is required");
    expect(messages(create(PlaybookSchema, { goalKind: "x" }))).toEqual([
      "strategies: at least one strategy is required",
    ]);
  });

  it("validates goal input against the schema with Ajv's errors", () => {
    const p = playbook([{ id: "a" }], {
      inputSchema: {
        type: "object",
        required: ["text"],
        properties: { text: { type: "string" }, n: { type: "integer" } },
      },
    });
    validateGoalInput(p, { text: "ok" });
    const err = thrown(() => validateGoalInput(p, { n: "x" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.details.errors).toEqual(
      expect.arrayContaining([
        { path: "", message: "must have required property 'text'" },
        { path: "/n", message: "must be integer" },
      ]),
    );
  });
});

/** Random DAGs: node i may depend only on nodes before it. */
const dagArbitrary = fc.integer({ min: 2, max: 25 }).chain((n) =>
  fc
    .array(fc.array(fc.nat({ max: n - 1 }), { maxLength: 4 }), { minLength: n, maxLength: n })
    .map((deps) =>
      deps.map((ds, i) => ({
        id: `s${i}`,
        dependsOn: [...new Set(ds.filter((d) => d < i))].map((d) => `s${d}`),
      })),
    ),
);

describe("DAG validator (property)", () => {
  it("accepts every random DAG and orders it topologically", () => {
    fc.assert(
      fc.property(dagArbitrary, (nodes) => {
        expect(findCycle(nodes)).toBeUndefined();
        expect(messages(playbook(nodes))).toEqual([]);
        const order = topologicalOrder(nodes);
        const position = new Map(order.map((id, i) => [id, i]));
        for (const n of nodes) {
          for (const d of n.dependsOn) expect(position.get(d)!).toBeLessThan(position.get(n.id)!);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("rejects a random DAG with a back edge added, naming a real cycle", () => {
    const withPath = dagArbitrary.filter((nodes) => nodes.some((n) => n.dependsOn.length > 0));
    fc.assert(
      fc.property(withPath, fc.nat(), (nodes, pick) => {
        // Take an edge to → from and add from → to... reversed: an ancestor depends on a descendant.
        const withDeps = nodes.filter((n) => n.dependsOn.length > 0);
        const child = withDeps[pick % withDeps.length]!;
        const parent = nodes.find((n) => n.id === child.dependsOn[0])!;
        const cyclic = nodes.map((n) =>
          n === parent ? { ...n, dependsOn: [...n.dependsOn, child.id] } : n,
        );
        const cycle = findCycle(cyclic);
        expect(cycle).toBeDefined();
        // Every consecutive pair is a real dependency and the cycle closes.
        expect(cycle![0]).toBe(cycle![cycle!.length - 1]);
        const byId = new Map(cyclic.map((n) => [n.id, n]));
        for (let i = 0; i + 1 < cycle!.length; i++) {
          expect(byId.get(cycle![i]!)!.dependsOn).toContain(cycle![i + 1]);
        }
        expect(messages(playbook(cyclic)).join("\n")).toMatch(/dependency cycle/);
      }),
      { numRuns: 200 },
    );
  });
});
