/**
 * The learning service over real mTLS with the committed policy and a real
 * store: the choose/record loop converges on the better strategy, outcomes
 * are idempotent, training publishes versions, the drift guard rolls a worse
 * canary back and promotes a better one, and an operator can roll back.
 */
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { learning as learningCommand } from "../cli/commands/learning.js";
import { LearningService, ParametersState } from "../gen/agentmesh/v1/learning_pb.js";
import { Code, isMeshError } from "../lib/errors/mesh-error.js";
import type { Client } from "../lib/rpc/index.js";
import { needPostgres, runId } from "../lib/testing/infra.js";
import { createRng } from "../services/learning/domain/index.js";
import { createLearningService, type LearningServiceHandle } from "../services/learning/index.js";
import { type Harness, openHarness } from "./control-plane-harness.js";

const pg = await needPostgres();
const tenantId = "acme";

describe.skipIf(!pg)("learning service over mTLS", () => {
  let h: Harness;
  let service: LearningServiceHandle;
  let asExecutor: Client<typeof LearningService>;
  let asCli: Client<typeof LearningService>;
  const world = createRng(42);
  let address = "";

  beforeAll(async () => {
    h = await openHarness(pg!.url, ["learning", "executor", "cli", "planner"]);
    await h.store.tenants.create({ id: tenantId, displayName: "Acme" });
    // Half the decisions go to a canary, so the drift tests need fewer goals.
    await h.store.flags.set({ key: "learning.canary_fraction", value: "0.5" });
    service = createLearningService({
      store: h.store,
      log: h.log,
      trainingSchedule: false,
      rng: createRng(7),
      driftEvery: 10,
    });
    await service.start();
    const server = await h.serve("learning", LearningService, service.impl);
    address = server.address;
    asExecutor = await h.client(LearningService, server, "learning", "executor");
    asCli = await h.client(LearningService, server, "learning", "cli");
  });

  afterAll(async () => {
    await service?.stop();
    await h?.cleanup();
  });

  const context = (goalKind: string, text = "summarize the quarterly report") => ({
    tenantId,
    goalKind,
    sizeClass: "s",
    text,
  });

  const outcome = (
    goalId: string,
    goalKind: string,
    strategy: string,
    success: boolean,
    parametersVersion = "",
  ) => ({
    goalId,
    context: context(goalKind),
    strategy,
    parametersVersion,
    success,
    latency: durationFromMs(800),
    cost: 0.1,
    finishedAt: timestampFromMs(Date.now()),
    agentResults: [
      { agentId: "agent-1", capability: "text.summarize", success, latency: durationFromMs(700) },
    ],
  });

  /** One goal: choose, run in a simulated world, record. Returns the decision. */
  const goal = async (
    goalKind: string,
    successRate: (strategy: string, canary: boolean) => number,
  ) => {
    const goalId = runId("g");
    const choice = await asExecutor.chooseStrategy({
      context: context(goalKind),
      candidates: ["reliable", "flaky"],
      goalId,
    });
    const success = world.next() < successRate(choice.strategy, choice.canary);
    await asExecutor.recordOutcome({
      outcome: outcome(goalId, goalKind, choice.strategy, success, choice.parametersVersion),
    });
    return choice;
  };

  it("converges on the better strategy over a few hundred outcomes", async () => {
    const picks: string[] = [];
    for (let i = 0; i < 200; i++) {
      const c = await goal("converge", (s) => (s === "reliable" ? 0.95 : 0.5));
      picks.push(c.strategy);
    }
    const late = picks.slice(-60);
    const share = late.filter((s) => s === "reliable").length / late.length;
    expect(share).toBeGreaterThanOrEqual(0.85);
    const stats = await asCli.getStrategyStats({ tenantId, goalKind: "converge" });
    const reliable = stats.strategies.find((s) => s.strategy === "reliable");
    expect(reliable?.posteriorMean).toBeGreaterThan(0.85);
    expect(Number(reliable?.pulls)).toBeGreaterThan(120);
    expect(stats.selector).toBe("thompson");
  }, 60_000);

  it("records an outcome once per goal and scores the agents", async () => {
    const o = outcome(runId("g"), "idem", "reliable", true);
    expect((await asExecutor.recordOutcome({ outcome: o })).recorded).toBe(true);
    expect((await asExecutor.recordOutcome({ outcome: o })).recorded).toBe(false);
    const stats = await asCli.getStrategyStats({ tenantId, goalKind: "idem" });
    expect(stats.strategies.map((s) => [s.strategy, Math.round(s.successes)])).toEqual([
      ["reliable", 1],
    ]);
    const rel = await asCli.getAgentReliability({
      capability: "text.summarize",
      agentIds: ["agent-1"],
    });
    expect(rel.scores[0]?.observations).toBeGreaterThan(1);
    const similar = await asCli.listExperiences({
      tenantId,
      similarTo: "quarterly report summary",
      pageSize: 3,
    });
    expect(similar.experiences).toHaveLength(3);
    expect(similar.experiences[0]!.similarity).toBeGreaterThan(0.3);
  });

  it("rejects malformed input with INVALID_ARGUMENT and unknown callers with PERMISSION_DENIED", async () => {
    const code = async (p: Promise<unknown>) =>
      p.then(
        () => Code.Ok,
        (err: unknown) => (isMeshError(err) ? err.code : Code.Unknown),
      );
    expect(await code(asExecutor.chooseStrategy({ context: context("x"), candidates: [] }))).toBe(
      Code.InvalidArgument,
    );
    expect(await code(asExecutor.recordOutcome({ outcome: { goalId: "g" } }))).toBe(
      Code.InvalidArgument,
    );
    // The executor may choose and record, not train.
    expect(await code(asExecutor.triggerTraining({ reason: "x" }))).toBe(Code.PermissionDenied);
  });

  const versionState = async (version: string) =>
    (await h.store.learning.getParameters(version)).state;

  const waitForVersion = async (runIdOf: string) => {
    for (let i = 0; i < 200; i++) {
      const { versions } = await asCli.getStrategyStats({});
      const v = versions.find((x) => x.runId === runIdOf);
      if (v) return v;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`training run ${runIdOf} published no version`);
  };

  it("training publishes a first version as CURRENT and the next as a CANARY", async () => {
    const first = await waitForVersion((await asCli.triggerTraining({ reason: "test" })).runId);
    expect([first.version, first.state]).toEqual(["v1", ParametersState.CURRENT]);
    const second = await waitForVersion((await asCli.triggerTraining({ reason: "test" })).runId);
    expect([second.version, second.state]).toEqual(["v2", ParametersState.CANARY]);
    expect(second.trafficFraction).toBe(0.5);
    // The trained statistics carry what was learned before.
    const stats = await asCli.getStrategyStats({ tenantId, goalKind: "converge" });
    expect(stats.strategies.find((s) => s.strategy === "reliable")?.posteriorMean).toBeGreaterThan(
      0.85,
    );
  });

  it("the drift guard rolls back a worse canary and promotes a better one", async () => {
    for (let i = 0; i < 400 && (await versionState("v2")) === "CANARY"; i++) {
      await goal("drift", (_s, canary) => (canary ? 0.3 : 0.95));
    }
    expect(await versionState("v2")).toBe("ROLLED_BACK");

    await waitForVersion((await asCli.triggerTraining({ reason: "better" })).runId);
    for (let i = 0; i < 400 && (await versionState("v3")) === "CANARY"; i++) {
      await goal("drift", (_s, canary) => (canary ? 0.99 : 0.6));
    }
    expect(await versionState("v3")).toBe("CURRENT");
    expect(await versionState("v1")).toBe("RETIRED");
    const actions = (await h.store.audit.list({ limit: 1000 })).map(
      (e) => `${e.action} ${e.resource}`,
    );
    expect(actions).toContain("learning.parameters.rolled_back parameters/v2");
    expect(actions).toContain("learning.parameters.promoted parameters/v3");
  }, 60_000);

  it("agentmesh learning train triggers a run over mTLS as the cli identity", async () => {
    const printed: string[] = [];
    const log = vi
      .spyOn(console, "log")
      .mockImplementation((line: string) => void printed.push(line));
    const before = process.env.AGENTMESH_CERT_DIR;
    process.env.AGENTMESH_CERT_DIR = h.pki.dir;
    try {
      const code = await learningCommand.run([
        "train",
        "--reason",
        "cli test",
        "--address",
        address,
      ]);
      expect(code).toBe(0);
    } finally {
      log.mockRestore();
      if (before === undefined) delete process.env.AGENTMESH_CERT_DIR;
      else process.env.AGENTMESH_CERT_DIR = before;
    }
    const { runId: id } = JSON.parse(printed[0]!) as { runId: string };
    const v = await waitForVersion(id);
    // Published while v3 serves: a canary, rolled back again below.
    expect(v.state).toBe(ParametersState.CANARY);
  });

  it("rolls back to an earlier version on request, audited", async () => {
    const { current } = await asCli.rollbackParameters({ version: "v1", reason: "operator test" });
    expect([current?.version, current?.state]).toEqual(["v1", ParametersState.CURRENT]);
    expect(await versionState("v3")).toBe("ROLLED_BACK");
    expect(await versionState("v4")).toBe("ROLLED_BACK");
    const actions = (await h.store.audit.list({ limit: 1000 })).map((e) => e.action);
    expect(actions).toContain("learning.parameters.rollback");
    await expect(asCli.rollbackParameters({ version: "v99" })).rejects.toMatchObject({
      code: Code.NotFound,
    });
  });
});
