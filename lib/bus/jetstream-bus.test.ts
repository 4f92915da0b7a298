import { jetstreamManager } from "@nats-io/jetstream";
import { needNats, runId } from "../testing/infra.js";
import { busNames } from "./bus-names.js";
import { connectNats, createJetStreamBus } from "./jetstream-bus.js";
import { contractBusOptions, describeJobBusContract } from "./job-bus.contract.js";

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
