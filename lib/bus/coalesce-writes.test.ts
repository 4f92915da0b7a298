import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needNats, runId } from "../testing/infra.js";
import { coalesceWrites } from "./coalesce-writes.js";
import { connectNats } from "./jetstream-bus.js";

const nats = await needNats();

/** Counts the socket writes of a connection (nats.js's transport `send`). */
function countWrites(nc: NatsConnection): { readonly n: number } {
  const transport = (nc as unknown as { protocol: { transport: { send(b: Uint8Array): void } } })
    .protocol.transport;
  const send = transport.send.bind(transport);
  const counter = { n: 0 };
  transport.send = (b) => {
    counter.n++;
    send(b);
  };
  return counter;
}

/** Publishes `count` messages, each after a microtask checkpoint (as awaits between publishes do). */
async function publishAcrossMicrotasks(nc: NatsConnection, subject: string, count: number) {
  for (let i = 0; i < count; i++) {
    nc.publish(subject, String(i));
    await Promise.resolve();
    await Promise.resolve();
  }
}

describe.skipIf(!nats)("coalesceWrites", () => {
  let plain: NatsConnection;
  let coalesced: NatsConnection;
  let reader: NatsConnection;
  beforeAll(async () => {
    [plain, coalesced, reader] = await Promise.all([
      connectNats(nats!.url),
      connectNats(nats!.url),
      connectNats(nats!.url),
    ]);
    expect(coalesceWrites(coalesced)).toBe(true);
    expect(coalesceWrites(coalesced)).toBe(true); // twice is once
  });
  afterAll(async () => {
    await Promise.all([plain, coalesced, reader].map((nc) => nc?.close()));
  });

  const receive = async (subject: string, count: number) => {
    const got: string[] = [];
    let done!: () => void;
    const all = new Promise<void>((r) => {
      done = r;
    });
    const sub = reader.subscribe(subject, {
      callback: (_err, m: Msg) => {
        got.push(m.string());
        if (got.length === count) done();
      },
    });
    await reader.flush();
    return { got, all, sub };
  };

  it("writes what one event-loop turn published once, in order", async () => {
    const subject = runId("coalesce");
    const { got, all, sub } = await receive(subject, 10);
    await new Promise((r) => setImmediate(r));
    const plainWrites = countWrites(plain);
    const writes = countWrites(coalesced);
    await publishAcrossMicrotasks(plain, `${subject}.plain`, 5);
    await publishAcrossMicrotasks(coalesced, subject, 10);
    expect(plainWrites.n).toBe(5); // nats.js alone: one write per microtask checkpoint
    expect(writes.n).toBe(0); // not yet: at the end of the turn
    await new Promise((r) => setImmediate(r));
    expect(writes.n).toBe(1);
    await all;
    expect(got).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    sub.unsubscribe();
  });

  it("flush() still writes at once, with everything published before it", async () => {
    const subject = runId("coalesce-flush");
    const { got, all, sub } = await receive(subject, 2);
    coalesced.publish(subject, "a");
    coalesced.publish(subject, "b");
    await coalesced.flush(); // resolves on the server's PONG: both were written before the PING
    await all;
    expect(got).toEqual(["a", "b"]);
    sub.unsubscribe();
  });

  it("writes a buffer past the client's threshold without waiting for the turn to end", async () => {
    const subject = runId("coalesce-big");
    const { all, sub } = await receive(subject, 3);
    await new Promise((r) => setImmediate(r));
    const writes = countWrites(coalesced);
    const big = new Uint8Array(40 * 1024);
    coalesced.publish(subject, big);
    expect(writes.n).toBe(1);
    coalesced.publish(subject, "small");
    coalesced.publish(subject, "small");
    expect(writes.n).toBe(1);
    await all;
    expect(writes.n).toBe(2);
    sub.unsubscribe();
  });
});
