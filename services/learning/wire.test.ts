import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { OutcomeSchema, TrainingJobSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import {
  ChooseStrategyResponseSchema,
  ParametersState,
} from "../../gen/agentmesh/v1/learning_pb.js";
import { Code, type MeshError } from "../../lib/errors/mesh-error.js";
import { chooseStrategy } from "./domain/choose-strategy.js";
import { DAY_MS } from "./domain/decay.js";
import type { OutcomeRecord } from "./domain/outcome.js";
import { publishVersion } from "./domain/parameter-versions.js";
import { applyOutcome, emptyParameters } from "./domain/parameters.js";
import { createRng } from "./domain/random.js";
import {
  chooseResultToMessage,
  outcomeFromMessage,
  outcomeToMessage,
  reliabilityToMessage,
  strategyStatsMessages,
  trainingHalfLifeMs,
  versionToMessage,
} from "./wire.js";

const now = Date.UTC(2025, 0, 1);
const outcome: OutcomeRecord = {
  goalId: "g1",
  context: {
    tenantId: "acme",
    goalKind: "summarize",
    sizeClass: "m",
    text: "sum",
    features: { lang: "en" },
  },
  strategy: "solo",
  parametersVersion: "v3",
  success: true,
  latencyMs: 1234,
  cost: 0.5,
  finishedAt: now,
  collaborative: false,
  agentResults: [{ agentId: "a1", capability: "llm.summarize", success: true, latencyMs: 900 }],
};

describe("wire", () => {
  it("round-trips an outcome through the protobuf binary format", () => {
    const bytes = toBinary(OutcomeSchema, outcomeToMessage(outcome));
    expect(outcomeFromMessage(fromBinary(OutcomeSchema, bytes), 0)).toEqual(outcome);
  });

  it("fills a missing finish time and rejects a missing context", () => {
    const msg = create(OutcomeSchema, { goalId: "g", strategy: "s", context: { goalKind: "k" } });
    expect(outcomeFromMessage(msg, 42).finishedAt).toBe(42);
    try {
      outcomeFromMessage(create(OutcomeSchema, { goalId: "g" }), 0);
      expect.unreachable();
    } catch (err) {
      expect((err as MeshError).code).toBe(Code.InvalidArgument);
    }
  });

  it("maps decisions, versions, stats and reliability to messages", () => {
    const p = emptyParameters({ version: "v3" });
    applyOutcome(p, outcome);
    const r = chooseStrategy({
      context: outcome.context,
      candidates: ["solo"],
      parameters: p,
      rng: createRng(),
      now,
    });
    const msg = chooseResultToMessage(r);
    expect(msg.$typeName).toBe(ChooseStrategyResponseSchema.typeName);
    expect(msg).toMatchObject({ strategy: "solo", selector: "thompson", parametersVersion: "v3" });

    const [v] = publishVersion([], { version: "v3", runId: "r", createdAt: now });
    expect(versionToMessage(v!)).toMatchObject({
      version: "v3",
      state: ParametersState.CURRENT,
      trafficFraction: 1,
    });

    const stats = strategyStatsMessages(p, now, { tenantId: "acme" });
    expect(stats).toHaveLength(1);
    expect(stats[0]).toMatchObject({
      strategy: "solo",
      bucket: "tenant=acme/kind=summarize/size=m",
      pulls: 1n,
    });
    expect(stats[0]!.posteriorMean).toBeCloseTo(2 / 3);
    expect(strategyStatsMessages(p, now, { tenantId: "globex" })).toEqual([]);

    expect(
      reliabilityToMessage({ agentId: "a", capability: "c", score: 0.7, observations: 3 }),
    ).toMatchObject({
      score: 0.7,
    });
  });

  it("reads a training job's half-life with the 7-day default", () => {
    expect(trainingHalfLifeMs(create(TrainingJobSchema, {}))).toBe(7 * DAY_MS);
    expect(
      trainingHalfLifeMs(create(TrainingJobSchema, { decayHalfLife: durationFromMs(DAY_MS) })),
    ).toBe(DAY_MS);
  });
});
