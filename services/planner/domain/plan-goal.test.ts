// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step templates
import { create } from "@bufbuild/protobuf";
import { beforeAll, describe, expect, it } from "vitest";
import type { Playbook } from "../../../gen/agentmesh/v1/planner_pb.js";
import { AgentSchema } from "../../../gen/agentmesh/v1/registry_pb.js";
import { Code, type MeshError } from "../../../lib/errors/mesh-error.js";
import { decisionContext } from "../../../lib/plan/decision-context.js";
import { parseLlmStrategy, validateLlmPlannerOptions } from "./llm-planner.js";
import { builtinPlaybookDir, loadPlaybookDir } from "./load-playbooks.js";
import { instantiatePlan, missingCapabilities, requireCapabilities } from "./plan.js";
import { explainPlan, type PlanningInputs, planGoal } from "./plan-goal.js";
import { firstStrategyChooser, type StrategyChooser, withFallback } from "./strategy-chooser.js";

let playbooks: Map<string, Playbook>;
beforeAll(async () => {
  playbooks = new Map((await loadPlaybookDir(builtinPlaybookDir)).map((p) => [p.goalKind, p]));
});

const all = new Set([
  "text.summarize",
  "text.keywords",
  "text.stats",
  "data.transform",
  "util.echo",
  "util.flaky",
]);

function inputs(kind: string, overrides: Partial<PlanningInputs> = {}): PlanningInputs {
  let n = 0;
  return {
    playbook: playbooks.get(kind)!,
    liveCapabilities: all,
    chooser: firstStrategyChooser,
    newPlanId: () => `plan-${++n}`,
    now: () => 1_700_000_000_000,
    ...overrides,
  };
}

async function rejected(p: Promise<unknown>): Promise<MeshError> {
  try {
    await p;
  } catch (err) {
    return err as MeshError;
  }
  throw new Error("expected a rejection");
}

describe("plan instantiation", () => {
  it("resolves input templates, keeps step templates, lists capabilities", () => {
    const plan = instantiatePlan({
      playbook: playbooks.get("analyze-text")!,
      strategy: "parallel",
      goal: { goalId: "g1", tenantId: "t1", input: { text: "Cats sleep." } },
      planId: "p1",
      now: 0,
    });
    expect(plan.planId).toBe("p1");
    expect(plan.goalId).toBe("g1");
    expect(plan.outputStep).toBe("merge");
    expect(plan.steps[0]!.input).toEqual({ text: "Cats sleep." });
    // An optional input that is absent drops the field, so the agent's default applies.
    expect(plan.steps[1]!.input).toEqual({ text: "Cats sleep." });
    expect(plan.steps[3]!.input!.data).toEqual({
      stats: "${steps.stats.output}",
      keywords: "${steps.keywords.output.keywords}",
      summary: "${steps.summary.output.summary}",
    });
    expect(missingCapabilities(plan, new Set(["text.stats"]))).toEqual([
      "data.transform",
      "text.keywords",
      "text.summarize",
    ]);
    try {
      requireCapabilities(plan, new Set(["text.stats", "text.keywords"]));
      expect.unreachable();
    } catch (err) {
      expect((err as MeshError).code).toBe(Code.FailedPrecondition);
      expect((err as MeshError).message).toContain('"data.transform", "text.summarize"');
      expect((err as MeshError).details.missingCapabilities).toEqual([
        "data.transform",
        "text.summarize",
      ]);
    }
  });

  it("defaults the output step to the last step and resolves sub-goal input", () => {
    const plan = instantiatePlan({
      playbook: playbooks.get("research")!,
      strategy: "brief",
      goal: { goalId: "g", tenantId: "t", input: { text: "x", topic: "y" } },
      planId: "p",
      now: 0,
    });
    expect(plan.steps[1]!.subGoal!.input).toEqual({ text: "x", sentences: 2 });
    const echo = instantiatePlan({
      playbook: playbooks.get("echo")!,
      strategy: "direct",
      goal: { goalId: "g", tenantId: "t", input: { message: "hi" } },
      planId: "p",
      now: 0,
    });
    expect(echo.outputStep).toBe("echo");
    expect(echo.steps[0]!.replicas).toBe(1);
  });
});

describe("planGoal", () => {
  const goal = { goalId: "g1", tenantId: "t1", goalKind: "summarize", input: { text: "hello" } };

  it("validates input against the playbook schema", async () => {
    const err = await rejected(planGoal({ ...goal, input: { sentences: 0 } }, inputs("summarize")));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toMatch(/required property 'text'/);
  });

  it("asks the chooser among eligible strategies and records its scores", async () => {
    const seen: string[][] = [];
    const chooser: StrategyChooser = {
      name: "thompson",
      async choose({ candidates, context }) {
        seen.push([...candidates]);
        expect(context.goalKind).toBe("summarize");
        expect(context.text).toBe("hello");
        expect(context.sizeClass).toBe("s");
        return {
          strategy: "committee",
          selector: "thompson",
          parametersVersion: "v7",
          scores: { solo: 0.4, committee: 0.6 },
          reason: "committee wins",
        };
      },
    };
    const r = await planGoal(goal, inputs("summarize", { chooser }));
    expect(seen).toEqual([["solo", "committee"]]);
    expect(r.plan.strategy).toBe("committee");
    expect(r.plan.collaborative).toBe(true);
    expect(r.plan.parametersVersion).toBe("v7");
    expect(r.plan.rationale).toBe("committee wins");
    expect(r.selector).toBe("thompson");
    expect(r.candidates.map((c) => [c.strategy, c.score])).toEqual([
      ["solo", 0.4],
      ["committee", 0.6],
    ]);
  });

  it("falls back to the first strategy when the chooser fails or answers nonsense", async () => {
    const failures: unknown[] = [];
    const broken = withFallback(
      {
        name: "learning",
        async choose() {
          throw new Error("UNAVAILABLE");
        },
      },
      { onFallback: (e) => failures.push(e) },
    );
    const r = await planGoal(goal, inputs("summarize", { chooser: broken }));
    expect(r.plan.strategy).toBe("solo");
    expect(r.selector).toBe("fallback");
    expect(r.plan.rationale).toMatch(/learning is unavailable/);
    const liar = withFallback({
      name: "learning",
      async choose() {
        return { strategy: "nope", selector: "x", parametersVersion: "", scores: {}, reason: "" };
      },
    });
    expect((await planGoal(goal, inputs("summarize", { chooser: liar }))).plan.strategy).toBe(
      "solo",
    );
    expect(failures).toHaveLength(1);
  });

  it("honours a requested strategy and rejects unknown or unrunnable ones", async () => {
    const r = await planGoal({ ...goal, strategy: "committee" }, inputs("summarize"));
    expect(r.plan.strategy).toBe("committee");
    expect(r.selector).toBe("requested");
    expect((await rejected(planGoal({ ...goal, strategy: "x" }, inputs("summarize")))).code).toBe(
      Code.NotFound,
    );
  });

  it("fails with FAILED_PRECONDITION naming the missing capabilities", async () => {
    const err = await rejected(
      planGoal(
        { goalId: "g", tenantId: "t", goalKind: "analyze-text", input: { text: "x" } },
        inputs("analyze-text", { liveCapabilities: new Set(["text.stats"]) }),
      ),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.details.missingCapabilities).toEqual([
      "data.transform",
      "text.keywords",
      "text.summarize",
    ]);
    expect(err.message).toMatch(/"data.transform", "text.keywords", "text.summarize"/);
  });

  it("explains the plan with candidate agents per step", async () => {
    const r = await planGoal(goal, inputs("summarize"));
    const agent = create(AgentSchema, { agentId: "a1" });
    const e = explainPlan(r, (c) => (c === "text.summarize" ? [agent] : []));
    expect(e.selector).toBe("fallback");
    expect(e.plan?.strategy).toBe("solo");
    expect(e.steps.map((s) => [s.stepId, s.capability, s.candidates.length])).toEqual([
      ["summarize", "text.summarize", 1],
    ]);
    expect(e.candidates.map((c) => c.strategy)).toEqual(["solo", "committee"]);
  });

  it("builds a decision context with a size class", () => {
    expect(decisionContext("t", "k", { query: "q" }).text).toBe("q");
    expect(decisionContext("t", "k", { text: "x".repeat(5000) }).sizeClass).toBe("m");
    expect(decisionContext("t", "k", { a: "x".repeat(40_000) }).sizeClass).toBe("l");
  });
});

describe("llm planner contract", () => {
  it("is off by default and validates its options when on", () => {
    expect(validateLlmPlannerOptions({ enabled: false, endpoint: "", model: "" }).timeoutMs).toBe(
      20_000,
    );
    const bad = (o: object) => {
      try {
        validateLlmPlannerOptions({ enabled: true, endpoint: "http://x/v1", model: "m", ...o });
      } catch (err) {
        return (err as MeshError).code;
      }
      return Code.Ok;
    };
    expect(bad({})).toBe(Code.Ok);
    expect(bad({ endpoint: "not a url" })).toBe(Code.InvalidArgument);
    expect(bad({ endpoint: "ftp://x" })).toBe(Code.InvalidArgument);
    expect(bad({ endpoint: "https://u:p@x" })).toBe(Code.InvalidArgument);
    expect(bad({ model: " " })).toBe(Code.InvalidArgument);
  });

  it("accepts a valid answer and rejects cycles, unknown capabilities and non-JSON", () => {
    const live = new Set(["text.summarize", "text.keywords"]);
    const ok = parseLlmStrategy(
      '```json\n{"steps":[{"id":"k","capability":"text.keywords","input":{"text":"${input.text}"}},{"id":"s","capability":"text.summarize","depends_on":["k"]}]}\n```',
      live,
    );
    expect(ok.name).toBe("llm");
    expect(ok.steps.map((s) => s.stepId)).toEqual(["k", "s"]);
    const err = (reply: string) => {
      try {
        parseLlmStrategy(reply, live);
      } catch (e) {
        return (e as MeshError).message;
      }
      return "";
    };
    expect(err("I think you should...")).toMatch(/not JSON/);
    expect(err('{"steps":[{"id":"a","capability":"text.keywords","depends_on":["a"]}]}')).toMatch(
      /depends on itself/,
    );
    expect(err('{"steps":[{"id":"a","capability":"shell.exec"}]}')).toMatch(
      /unknown capabilities: shell.exec/,
    );
  });
});
