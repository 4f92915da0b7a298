/**
 * Semantic validation of a playbook, whether it came from a YAML file or
 * through `PutPlaybook`: names, references, acyclicity, template scopes,
 * replicas, retry and timeout bounds, and the input schema.
 *
 * @example
 * const violations = validatePlaybook(playbook); // [] when valid
 * assertValidPlaybook(playbook); // throws INVALID_ARGUMENT listing them
 */
import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Playbook, Step, Strategy } from "../../../gen/agentmesh/v1/planner_pb.js";
import type { MeshError } from "../../../lib/errors/mesh-error.js";
import { capabilityNameProblem } from "../../../lib/plan/capability.js";
import { templateRefs } from "../../../lib/plan/template.js";
import { versionRangeProblem } from "../../../lib/plan/version-range.js";
import { nameProblem as contractNameProblem, nameRules } from "../../../lib/proto/name-rules.js";
import { isRedactedStruct, redactedText } from "../../../lib/proto/sensitive-fields.js";
import { findCycle, transitiveDependencies } from "./dag.js";
import { schemaProblem } from "./input-schema.js";
import { type FieldPath, type Violation, violationsError } from "./violation.js";

/** Bounds a playbook must stay within. */
export const playbookLimits = {
  maxStrategies: 32,
  maxSteps: 200,
  maxReplicas: 16,
  maxAttempts: 50,
  maxBackoffMs: 3_600_000,
  maxTimeoutMs: 86_400_000,
  maxMultiplier: 10,
} as const;

const namePattern = /^[A-Za-z][A-Za-z0-9_-]*$/;
const maxNameLength = 64;

/** Every problem of a playbook; empty when it is valid. */
export function validatePlaybook(playbook: Playbook): Violation[] {
  const out: Violation[] = [];
  const add = (path: FieldPath, message: string) => out.push({ path, message });

  // Playbook files reach no RPC check: the contract's goal-kind rule is applied here too.
  const kindIssue = contractNameProblem(nameRules.goalKind, playbook.goalKind);
  if (kindIssue !== undefined) add(["goal_kind"], kindIssue);
  const schemaIssue = schemaProblem(playbook.inputSchema);
  if (schemaIssue !== undefined) add(["input_schema"], schemaIssue);

  if (playbook.strategies.length === 0) add(["strategies"], "at least one strategy is required");
  if (playbook.strategies.length > playbookLimits.maxStrategies) {
    add(["strategies"], `at most ${playbookLimits.maxStrategies} strategies`);
  }
  const names = new Set<string>();
  playbook.strategies.forEach((strategy, i) => {
    const at: FieldPath = ["strategies", i];
    if (!isName(strategy.name)) {
      add([...at, "name"], nameProblem("strategy name", strategy.name));
    } else if (names.has(strategy.name)) {
      add([...at, "name"], `duplicate strategy name "${strategy.name}"`);
    }
    names.add(strategy.name);
    validateStrategy(strategy, at, add);
  });
  return out;
}

/** Throws INVALID_ARGUMENT listing every violation; returns the playbook when valid. */
export function assertValidPlaybook(playbook: Playbook): Playbook {
  const violations = validatePlaybook(playbook);
  if (violations.length > 0) throw invalidPlaybook(playbook.goalKind, violations);
  return playbook;
}

/** The error for an invalid playbook. */
export function invalidPlaybook(goalKind: string, violations: Violation[]): MeshError {
  return violationsError(`invalid playbook "${goalKind}"`, violations, { goalKind });
}

/**
 * Checks one strategy's DAG. Exported for plans proposed by other planners
 * (the LLM planner), which must pass the same checks as a playbook.
 */
export function validateStrategy(
  strategy: Strategy,
  at: FieldPath,
  add: (path: FieldPath, message: string) => void,
): void {
  const steps = strategy.steps;
  if (steps.length === 0) add([...at, "steps"], "at least one step is required");
  if (steps.length > playbookLimits.maxSteps) {
    add([...at, "steps"], `at most ${playbookLimits.maxSteps} steps`);
  }
  const ids = new Map<string, number>();
  steps.forEach((step, j) => {
    const sat: FieldPath = [...at, "steps", j];
    if (!isName(step.stepId)) add([...sat, "id"], nameProblem("step id", step.stepId));
    else if (ids.has(step.stepId)) add([...sat, "id"], `duplicate step id "${step.stepId}"`);
    else ids.set(step.stepId, j);
  });

  let graphOk = true;
  steps.forEach((step, j) => {
    const sat: FieldPath = [...at, "steps", j];
    validateStepShape(step, sat, add);
    const seen = new Set<string>();
    step.dependsOn.forEach((dep, k) => {
      if (dep === step.stepId) {
        add([...sat, "depends_on", k], `step "${step.stepId}" depends on itself`);
        graphOk = false;
      } else if (!ids.has(dep)) {
        add([...sat, "depends_on", k], `unknown step "${dep}"`);
        graphOk = false;
      } else if (seen.has(dep)) {
        add([...sat, "depends_on", k], `"${dep}" is listed twice`);
      }
      seen.add(dep);
    });
  });

  const nodes = steps.map((s) => ({ id: s.stepId, dependsOn: s.dependsOn }));
  const cycle = graphOk ? findCycle(nodes) : undefined;
  if (cycle !== undefined) {
    const first = ids.get(cycle[0]!) ?? 0;
    add([...at, "steps", first, "depends_on"], `dependency cycle: ${cycle.join(" → ")}`);
    graphOk = false;
  }

  // Templates may read the goal input and the outputs of steps this step waits for.
  const reachable = graphOk ? transitiveDependencies(nodes) : undefined;
  steps.forEach((step, j) => {
    const sat: FieldPath = [...at, "steps", j];
    const inputs: Array<[FieldPath, unknown]> = [[[...sat, "input"], step.input]];
    if (step.subGoal !== undefined) {
      inputs.push([[...sat, "sub_goal", "input"], step.subGoal.input]);
    }
    for (const [path, value] of inputs) {
      if (isRedactedStruct(value)) {
        // A playbook read by a principal without the right to its inputs, put back as read.
        add(path, `is "${redactedText}", not an input: put the playbook as its author wrote it`);
        continue;
      }
      const refs = templateRefs(value, (where, err) =>
        add(where === "" ? path : [...path, where], err.message),
      );
      for (const { at: where, ref } of refs) {
        if (ref.source !== "step") continue;
        const fieldPath = where === "" ? path : [...path, where];
        if (!ids.has(ref.stepId)) {
          add(fieldPath, `${ref.text} refers to unknown step "${ref.stepId}"`);
        } else if (reachable !== undefined && !reachable.get(step.stepId)?.has(ref.stepId)) {
          add(
            fieldPath,
            `${ref.text} reads step "${ref.stepId}", which step "${step.stepId}" does not depend on`,
          );
        }
      }
    }
  });

  if (strategy.outputStep !== "" && !ids.has(strategy.outputStep)) {
    add([...at, "output_step"], `unknown step "${strategy.outputStep}"`);
  }
}

function validateStepShape(
  step: Step,
  at: FieldPath,
  add: (path: FieldPath, message: string) => void,
): void {
  if (step.subGoal !== undefined) {
    if (step.capability !== "") {
      add(at, "a step has either a capability or a sub_goal, not both");
    }
    const subKindIssue = contractNameProblem(nameRules.goalKind, step.subGoal.kind);
    if (subKindIssue !== undefined) add([...at, "sub_goal", "kind"], subKindIssue);
    if (step.replicas > 1) add([...at, "replicas"], "sub-goal steps cannot have replicas");
  } else {
    const problem = capabilityNameProblem(step.capability);
    if (problem !== undefined) {
      add(
        [...at, "capability"],
        step.capability === "" ? "a step needs a capability or a sub_goal" : problem,
      );
    }
  }
  if (step.versionRange !== "") {
    const rangeIssue =
      step.subGoal !== undefined
        ? "a sub-goal step has no agent, so no version range"
        : versionRangeProblem(step.versionRange);
    if (rangeIssue !== undefined) add([...at, "version_range"], rangeIssue);
  }
  if (step.replicas > playbookLimits.maxReplicas) {
    add([...at, "replicas"], `replicas must be between 1 and ${playbookLimits.maxReplicas}`);
  }
  if (step.timeout !== undefined) {
    const ms = durationMs(step.timeout);
    if (ms < 0 || ms > playbookLimits.maxTimeoutMs) {
      add([...at, "timeout"], "timeout must be positive and at most 24h");
    }
  }
  const retry = step.retry;
  if (retry !== undefined) {
    if (retry.maxAttempts > playbookLimits.maxAttempts) {
      add([...at, "retry", "max_attempts"], `at most ${playbookLimits.maxAttempts} attempts`);
    }
    const initial = retry.initialBackoff ? durationMs(retry.initialBackoff) : 0;
    const max = retry.maxBackoff ? durationMs(retry.maxBackoff) : 0;
    if (initial < 0 || initial > playbookLimits.maxBackoffMs) {
      add([...at, "retry", "initial_backoff"], "backoff must be between 0 and 1h");
    }
    if (max < 0 || max > playbookLimits.maxBackoffMs) {
      add([...at, "retry", "max_backoff"], "backoff must be between 0 and 1h");
    }
    if (initial > 0 && max > 0 && initial > max) {
      add([...at, "retry", "max_backoff"], "max_backoff is shorter than initial_backoff");
    }
    const m = retry.backoffMultiplier;
    if (m !== 0 && !(m >= 1 && m <= playbookLimits.maxMultiplier)) {
      add(
        [...at, "retry", "multiplier"],
        `multiplier must be between 1 and ${playbookLimits.maxMultiplier}`,
      );
    }
    retry.nonRetryableCodes.forEach((code, k) => {
      if (code.trim() === "") add([...at, "retry", "non_retryable_codes", k], "empty code");
    });
  }
}

function isName(name: string): boolean {
  return namePattern.test(name) && name.length <= maxNameLength;
}

function nameProblem(what: string, name: string): string {
  if (name === "") return `${what} is required`;
  return `${what} "${name}" must start with a letter and use only letters, digits, "-" and "_" (at most ${maxNameLength})`;
}
