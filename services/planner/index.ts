/**
 * The planner service: goals to plans over mTLS gRPC, playbooks per tenant.
 *
 * @example
 * import { createPlannerService } from "../services/planner/index.js";
 * const planner = createPlannerService({ store, log, registry, learning });
 * await planner.start();
 * server.add(PlannerService, planner.impl);
 */

export { dryRunFeature, type LearningChooserOptions, learningChooser } from "./learning-chooser.js";
export {
  createHttpLlmPlanner,
  type HttpLlmPlannerOptions,
  llmPlannerFromEnv,
} from "./llm-planner-http.js";
export {
  createPlannerService,
  type PlannerServiceDeps,
  type PlannerServiceHandle,
} from "./planner-service.js";
export {
  createPlaybookCatalog,
  type PlaybookCatalog,
  type PlaybookCatalogOptions,
  playbookFromRecord,
  playbookToJson,
} from "./playbook-catalog.js";
