/**
 * The job bus: step jobs to agents, results, goal events and learning jobs
 * back, on NATS JetStream or in-process with the same delivery contract.
 *
 * @example
 * import { connectBus } from "../lib/bus/index.js";
 * const bus = await connectBus({ natsUrl: process.env.NATS_URL, explicit: !!process.env.NATS_URL });
 */
export {
  type Admission,
  admitJob,
  agentLostCode,
  attemptFenceGraceMs,
  type JobClock,
  type Refusal,
} from "./attempt-fence.js";
export { registerBusMetrics } from "./bus-metrics.js";
export {
  type BusNames,
  busNames,
  checkCapability,
  isValidCapability,
  jobConsumerName,
} from "./bus-names.js";
export { busOptionsFromEnv, type ConnectBusOptions, connectBus } from "./connect-bus.js";
export { createInProcessBus, type InProcessBusOptions } from "./in-process-bus.js";
export {
  connectNats,
  createJetStreamBus,
  type JetStreamBusOptions,
} from "./jetstream-bus.js";
export {
  type BusKind,
  type BusOptions,
  type ConsumeOptions,
  type Delivery,
  type DeliveryHandler,
  defaultBackoff,
  type GoalEventFeed,
  type JobBus,
  type JobConsumeOptions,
  type ListDeadLettersOptions,
  type PreviousDelivery,
  type PublishAck,
  type PublishOptions,
  payloadTooLarge,
  type QueueStats,
  type ResolvedBusOptions,
  resolveBusOptions,
  type StopOptions,
  type StopResult,
  type Subscription,
  type Unsubscribe,
} from "./job-bus.js";
