import { headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, MeshError } from "../errors/mesh-error.js";
import { needNats, runId } from "../testing/infra.js";
import { connectNats } from "./jetstream-bus.js";
import { PubAckInbox } from "./pub-ack-inbox.js";

const nats = await needNats();

describe.skipIf(!nats)("PubAckInbox", () => {
  let nc: NatsConnection;
  let acks: PubAckInbox;
  beforeAll(async () => {
    nc = await connectNats(nats!.url);
    acks = new PubAckInbox(nc);
  });
  afterAll(async () => {
    acks?.close(new Error("test over"));
    await nc?.close();
  });

  const code = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e) => MeshError.from(e).code,
    );

  it("fails at once with UNAVAILABLE when no stream stores the subject", async () => {
    const t0 = Date.now();
    expect(await code(acks.publish(runId("nostream"), new Uint8Array(1), headers(), 5_000))).toBe(
      Code.Unavailable,
    );
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(acks.size).toBe(0);
  });

  it("times out with DEADLINE_EXCEEDED when a responder never answers", async () => {
    const subject = runId("silent");
    const silent = nc.subscribe(subject, { callback: () => undefined });
    await nc.flush();
    const t0 = Date.now();
    expect(await code(acks.publish(subject, new Uint8Array(1), headers(), 300))).toBe(
      Code.DeadlineExceeded,
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(acks.size).toBe(0);
    silent.unsubscribe();
  });

  it("failAll ends every wait with the given error", async () => {
    const subject = runId("silent");
    const silent = nc.subscribe(subject, { callback: () => undefined });
    await nc.flush();
    const waits = [1, 2, 3].map(() =>
      code(acks.publish(subject, new Uint8Array(1), headers(), 30_000)),
    );
    acks.failAll(new MeshError(Code.Unavailable, "connection lost"));
    expect(await Promise.all(waits)).toEqual([
      Code.Unavailable,
      Code.Unavailable,
      Code.Unavailable,
    ]);
    expect(acks.size).toBe(0);
    silent.unsubscribe();
  });
});
