import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { admitJob, agentLostCode } from "./attempt-fence.js";

describe("attempt fencing", () => {
  const base = { nowMs: 10_000, timeoutMs: 5_000, previous: "none" as const };

  it("runs a job inside its deadlines, limited by the earliest of timeout and deadlines", () => {
    expect(admitJob(base)).toEqual({ run: true, limitMs: 5_000 });
    expect(admitJob({ ...base, attemptDeadlineMs: 12_000 })).toEqual({ run: true, limitMs: 2_000 });
    expect(admitJob({ ...base, attemptDeadlineMs: 30_000, goalDeadlineMs: 11_000 })).toEqual({
      run: true,
      limitMs: 1_000,
    });
    expect(admitJob({ ...base, previous: "handed-back" })).toEqual({ run: true, limitMs: 5_000 });
  });

  it("never starts a job at or past its attempt's deadline", () => {
    const a = admitJob({ ...base, attemptDeadlineMs: 10_000 });
    expect(a).toMatchObject({
      run: false,
      failure: { code: "DEADLINE_EXCEEDED", retryable: true },
    });
    const late = admitJob({ ...base, attemptDeadlineMs: 9_000 });
    expect(late.run === false && late.failure.message).toMatch(/1000 ms before an agent/);
  });

  it("fails a job past its goal's deadline terminally", () => {
    expect(admitJob({ ...base, goalDeadlineMs: 10_000, attemptDeadlineMs: 20_000 })).toMatchObject({
      run: false,
      failure: { code: "DEADLINE_EXCEEDED", retryable: false },
    });
  });

  it("refuses a redelivery after a lost delivery: the job may have run, or killed its agent", () => {
    expect(admitJob({ ...base, previous: "lost" })).toMatchObject({
      run: false,
      failure: { code: agentLostCode, retryable: true },
    });
  });

  it("whenever it runs, it ends before both deadlines", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100_000 }),
        fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.constantFrom("none", "handed-back", "lost") as fc.Arbitrary<
          "none" | "handed-back" | "lost"
        >,
        (nowMs, attemptDeadlineMs, goalDeadlineMs, timeoutMs, previous) => {
          const a = admitJob({ nowMs, attemptDeadlineMs, goalDeadlineMs, timeoutMs, previous });
          if (!a.run) return;
          expect(previous).not.toBe("lost");
          expect(a.limitMs).toBeGreaterThan(0);
          expect(a.limitMs).toBeLessThanOrEqual(timeoutMs);
          if (attemptDeadlineMs !== undefined)
            expect(nowMs + a.limitMs).toBeLessThanOrEqual(attemptDeadlineMs);
          if (goalDeadlineMs !== undefined)
            expect(nowMs + a.limitMs).toBeLessThanOrEqual(goalDeadlineMs);
        },
      ),
    );
  });
});
