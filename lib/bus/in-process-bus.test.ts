import { createInProcessBus } from "./in-process-bus.js";
import { contractBusOptions, describeJobBusContract } from "./job-bus.contract.js";

describeJobBusContract("in-process", async () => {
  const bus = createInProcessBus({ ...contractBusOptions, prefix: "inproc" });
  return { bus, cleanup: () => bus.close({ graceMs: 0 }) };
});
