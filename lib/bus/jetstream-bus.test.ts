import { jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { needNats, runId } from "../testing/infra.js";
import { waitFor } from "../testing/wait-for.js";
import { busNames } from "./bus-names.js";
import { connectNats, createJetStreamBus } from "./jetstream-bus.js";
import { contractBusOptions, describeJobBusContract, stepJob } from "./job-bus.contract.js";

const nats = await needNats();

describeJobBusContract(
  "jetstream",
  nats &&
    (async () => {
      const prefix = runId("tbus");
      const options = { ...contractBusOptions, prefix, servers: nats.url };
      const bus = await createJetStreamBus(options);
      // A second connection stands in for another process on the same streams.
      const peer = await createJetStreamBus(options);
      return {
        bus,
        peer,
        async cleanup() {
          await Promise.all([bus.close({ graceMs: 0 }), peer.close({ graceMs: 0 })]);
          const nc = await connectNats(nats.url);
          const jsm = await jetstreamManager(nc);
          for (const s of Object.values(busNames(prefix).streams)) {
            await jsm.streams.delete(s).catch(() => false);
          }
          await nc.close();
        },
      };
    }),
);

describe.skipIf(!nats)("jetstream goal-event feeds", () => {
  it("a stopped feed and a dead-letter listing leave no consumer on the server", async () => {
    const prefix = runId("tfeed");
    const bus = await createJetStreamBus({ ...contractBusOptions, prefix, servers: nats!.url });
    const nc = await connectNats(nats!.url);
    const jsm = await jetstreamManager(nc);
    const events = busNames(prefix).streams.events;
    try {
      const feeds = await Promise.all(
        [1, 2, 3].map((i) => bus.subscribeGoalEvents("acme", `g-${i}`)),
      );
      // Each watcher reads its feed, as WatchGoal does, until it stops.
      const reading = feeds.map(async (f) => {
        for await (const _ of f);
      });
      expect((await jsm.streams.info(events)).state.consumer_count).toBe(3);
      await Promise.all(feeds.map((f) => f.stop()));
      await Promise.all(reading);
      expect((await jsm.streams.info(events)).state.consumer_count).toBe(0);
      // Listing dead letters reads them with an ordered consumer too.
      const sub = await bus.consumeJobs("test.dead", { handler: (d) => d.deadLetter("gave up") });
      await bus.publishJob(stepJob("test.dead"));
      await waitFor(
        "a dead letter",
        async () => (await bus.listDeadLetters()).length === 1,
        10_000,
      );
      await sub.stop();
      const dlq = busNames(prefix).streams.dlq;
      expect((await jsm.streams.info(dlq)).state.consumer_count).toBe(0);
    } finally {
      await bus.close({ graceMs: 0 });
      for (const s of Object.values(busNames(prefix).streams)) {
        await jsm.streams.delete(s).catch(() => false);
      }
      await nc.close();
    }
  });
});
