/**
 * `DispatchRetry` on a NATS of its own, killed with SIGKILL and restarted on
 * its JetStream store: a job whose publish failed while NATS was away is in
 * the stream within moments of the restart, not at its attempt's timeout; a
 * job past its attempt's deadline, refused for good, or no longer wanted (its
 * goal cancelled meanwhile) is not published.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createJetStreamBus } from "../../lib/bus/jetstream-bus.js";
import { stepJob } from "../../lib/bus/job-bus.contract.js";
import type { JobBus } from "../../lib/bus/job-bus.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { createLogger } from "../../lib/log/logger.js";
import { runId } from "../../lib/testing/infra.js";
import { type PrivateNatsServer, startNatsServer } from "../../lib/testing/nats-server.js";
import { sleep, waitFor } from "../../lib/testing/wait-for.js";
import { systemClock } from "./clock.js";
import { DispatchRetry, passingPublishFailure, publishableUntil } from "./dispatch-retry.js";

const log = createLogger({ name: "dispatch-retry-test", level: "silent" });

const down = (bus: JobBus) => {
  try {
    bus.checkAvailable();
    return false;
  } catch {
    return true;
  }
};

describe("DispatchRetry: a job NATS could not take leaves as soon as NATS is back", () => {
  let nats: PrivateNatsServer;
  let bus: JobBus;
  beforeAll(async () => {
    nats = await startNatsServer();
    bus = await createJetStreamBus({ servers: nats.url, prefix: runId("dretry"), log });
    await bus.ensureCapability("test.retry");
  });
  afterAll(async () => {
    await bus?.close({ graceMs: 0 });
    await nats?.stop();
  });

  it("publishes after the restart, well inside the attempt's timeout; gives up past its deadline", async () => {
    // A job whose goal was cancelled during the outage is not published.
    const cancelled = stepJob("test.retry", {
      attemptDeadline: timestampFromMs(Date.now() + 30_000),
    });
    const retry = new DispatchRetry({
      bus,
      clock: systemClock,
      log,
      stillWanted: async (j) => j.attemptId !== cancelled.attemptId,
    });
    const timeoutMs = 10_000;
    const job = stepJob("test.retry", {
      attemptDeadline: timestampFromMs(Date.now() + 30_000),
    });
    const late = stepJob("test.retry", { attemptDeadline: timestampFromMs(Date.now() + 1_000) });
    await nats.kill();
    await waitFor("the bus to see NATS gone", () => down(bus), 10_000);
    for (const j of [job, late, cancelled]) {
      const err = await bus.publishJob(j).catch((e: unknown) => e);
      expect(MeshError.from(err).code).toBe(Code.Unavailable);
      retry.add(j, err);
    }
    // A failure that no retry can mend is not retried.
    retry.add(stepJob("test.retry"), new MeshError(Code.ResourceExhausted, "too large"));
    expect(retry.size).toBe(3);
    await sleep(2_000); // `late` is past its deadline meanwhile
    await nats.start();
    const restarted = Date.now();
    await waitFor("the job to be published", () => retry.size === 0, timeoutMs);
    const publishedMs = Date.now() - restarted;
    console.log(`job published ${publishedMs} ms after the NATS restart`);
    expect(publishedMs).toBeLessThan(timeoutMs / 2);
    expect(retry.published).toBe(1);
    const stats = await bus.stats();
    expect(stats.find((s) => s.capability === "test.retry")?.lag).toBe(1);
    // Published again (another replica's redispatch): the stream keeps one.
    expect((await bus.publishJob(job)).duplicate).toBe(true);
    retry.stop();
  });

  it("knows which failures pass and how long a job may still leave", () => {
    expect(passingPublishFailure(new MeshError(Code.Unavailable, "x"))).toBe(true);
    expect(passingPublishFailure(new MeshError(Code.DeadlineExceeded, "x"))).toBe(true);
    expect(passingPublishFailure(new MeshError(Code.ResourceExhausted, "x"))).toBe(false);
    expect(passingPublishFailure(new MeshError(Code.FailedPrecondition, "closed"))).toBe(false);
    expect(passingPublishFailure(new Error("x"))).toBe(false);
    const at = 1_000_000;
    expect(publishableUntil(stepJob("c", { attemptDeadline: timestampFromMs(at + 7) }), at)).toBe(
      at + 7,
    );
    expect(publishableUntil(stepJob("c"), at)).toBe(at + 5_000);
  });
});
