import { describe, expect, it } from "vitest";
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import { chooseStrategy } from "./choose-strategy.js";
import { bucketKey } from "./context-bucket.js";
import { DAY_MS } from "./decay.js";
import { createRng } from "./random.js";
import { selectorConfig } from "./selector.js";
import type { TrainingExperience } from "./training.js";
import { trainParameters } from "./training.js";
import { DEFAULT_TRAINING_SCHEDULE, nextTrainingRun, parseSchedule } from "./training-schedule.js";

const now = Date.UTC(2025, 5, 1, 12);
const context = { tenantId: "acme", goalKind: "summarize", sizeClass: "s" };
const key = bucketKey(context);

function exp(
  strategy: string,
  success: boolean,
  ageMs: number,
  latencyMs = 1000,
): TrainingExperience {
  return { context, strategy, success, latencyMs, cost: 0.1, finishedAt: now - ageMs };
}

describe("trainParameters", () => {
  it("replays experiences with time decay into per-bucket statistics", () => {
    const p = trainParameters(
      [exp("solo", true, 0), exp("solo", true, 7 * DAY_MS), exp("solo", false, 14 * DAY_MS, 3000)],
      { version: "v2", runId: "run-1", now },
    );
    const row = p.buckets[key]!.solo!;
    expect(row.successes).toBeCloseTo(1.5);
    expect(row.failures).toBeCloseTo(0.25);
    expect(row.pulls).toBe(3);
    expect(row.updatedAt).toBe(now);
    // The running mean weighs recent latencies more: below the plain mean of 1667.
    expect(row.meanLatencyMs).toBeLessThan(1667);
    expect(p).toMatchObject({ version: "v2", runId: "run-1", trainedUntil: now, experiences: 3 });
    expect(JSON.parse(JSON.stringify(p))).toEqual(p);
  });

  it("honours the half-life, ignores future and negligible experiences, and is deterministic", () => {
    const xs = [
      exp("solo", true, DAY_MS),
      exp("solo", true, -DAY_MS),
      exp("solo", true, 400 * DAY_MS),
    ];
    const p = trainParameters(xs, { version: "v1", runId: "r", now, halfLifeMs: DAY_MS });
    expect(p.experiences).toBe(1);
    expect(p.buckets[key]!.solo!.successes).toBeCloseTo(0.5);
    const noDecay = trainParameters(xs, { version: "v1", runId: "r", now, halfLifeMs: 0 });
    expect(noDecay.buckets[key]!.solo!.successes).toBe(2);
    expect(trainParameters(xs, { version: "v1", runId: "r", now, halfLifeMs: DAY_MS })).toEqual(p);
    try {
      trainParameters(xs, { version: "v1", runId: "r", now, halfLifeMs: -1 });
      expect.unreachable();
    } catch (err) {
      expect((err as MeshError).code).toBe(Code.InvalidArgument);
    }
  });

  it("produces a version whose choices follow the experience", () => {
    const xs: TrainingExperience[] = [];
    for (let i = 0; i < 100; i++) {
      xs.push(exp("reliable", i % 20 !== 0, i * 60_000));
      xs.push(exp("flaky", i % 2 === 0, i * 60_000));
    }
    const p = trainParameters(xs, {
      version: "v3",
      runId: "r",
      now,
      config: selectorConfig({ selector: "thompson" }),
    });
    const rng = createRng(9);
    let reliable = 0;
    for (let i = 0; i < 200; i++) {
      const r = chooseStrategy({
        context,
        candidates: ["flaky", "reliable"],
        parameters: p,
        rng,
        now,
      });
      if (r.strategy === "reliable") reliable++;
    }
    expect(reliable).toBeGreaterThan(195);
  });
});

describe("training schedule", () => {
  it("runs nightly by default", () => {
    const next = nextTrainingRun(DEFAULT_TRAINING_SCHEDULE, new Date("2025-01-01T12:00:00Z"));
    expect(next?.toISOString()).toBe("2025-01-02T03:00:00.000Z");
    const s = parseSchedule();
    expect(s.next(new Date("2025-01-02T02:59:00Z"))?.toISOString()).toBe(
      "2025-01-02T03:00:00.000Z",
    );
  });

  it("accepts 6-field expressions and time zones", () => {
    expect(
      nextTrainingRun("30 */15 * * * *", new Date("2025-01-01T00:00:00Z"))?.toISOString(),
    ).toBe("2025-01-01T00:00:30.000Z");
    expect(
      nextTrainingRun("0 3 * * *", new Date("2025-01-01T12:00:00Z"), {
        timezone: "Europe/Berlin",
      })?.toISOString(),
    ).toBe("2025-01-02T02:00:00.000Z");
  });

  it("rejects malformed expressions with INVALID_ARGUMENT", () => {
    for (const bad of ["not a cron", "61 * * * *", "* * *"]) {
      try {
        parseSchedule(bad);
        expect.unreachable(bad);
      } catch (err) {
        expect(err).toBeInstanceOf(MeshError);
        expect((err as MeshError).code).toBe(Code.InvalidArgument);
      }
    }
  });
});
