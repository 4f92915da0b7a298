/**
 * The learning service: outcomes, strategy choice, training and drift-guarded
 * rollouts over mTLS gRPC and the learning stream.
 *
 * @example
 * import { createLearningService } from "../services/learning/index.js";
 * const learning = createLearningService({ store, log, bus });
 * server.add(LearningService, learning.impl);
 * await learning.start();
 */
export {
  createLearningEngine,
  dryRunFeature,
  type LearningEngine,
  type LearningEngineOptions,
  similarityVector,
} from "./learning-engine.js";
export {
  createLearningService,
  type LearningServiceDeps,
  type LearningServiceHandle,
} from "./learning-service.js";
export { createLearningState, type LearningState, untrainedVersion } from "./learning-state.js";
export {
  startTrainingScheduler,
  type TrainingScheduler,
  type TrainingSchedulerOptions,
  trainingSlotKey,
} from "./training-scheduler.js";
