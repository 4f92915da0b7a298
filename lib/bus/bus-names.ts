/**
 * Subject, stream and consumer names, all derived from one prefix so a test
 * run (or a second mesh on the same NATS) never touches another's messages.
 *
 * @example
 * const n = busNames("agentmesh");
 * n.jobSubject("text.summarize"); // "agentmesh.jobs.text.summarize"
 * jobConsumerName("text.summarize"); // "jobs_text_summarize"
 */
import { createHash } from "node:crypto";
import { Code, MeshError } from "../errors/mesh-error.js";
import { capabilityNameProblem, isCapabilityName } from "../plan/capability.js";
import { isVersion } from "../plan/version-range.js";

export interface BusNames {
  prefix: string;
  streams: {
    jobs: string;
    results: string;
    events: string;
    learning: string;
    dlq: string;
    handBacks: string;
  };
  jobSubject(capability: string): string;
  /**
   * The queue of one agent version's jobs of a capability (a step with a version
   * range, ADR-015): `<prefix>.jobs._v.<version token>.<capability>`. `_v` cannot
   * be a capability's first word, so it never meets a capability's own subject.
   */
  pinnedJobSubject(capability: string, version: string): string;
  /** Capability and version token of a pinned job subject, or undefined if it is not one. */
  pinnedOf(subject: string): { capability: string; versionToken: string } | undefined;
  /** Every job subject, for the jobs stream. */
  jobsWildcard: string;
  /** Where `publisher` (an identity name; default `anonymous`) reports on a goal. */
  resultSubject(goalId: string, publisher?: string): string;
  resultsWildcard: string;
  /** The publisher token of a result subject, or undefined if it is not one. */
  resultPublisherOf(subject: string): string | undefined;
  eventSubject(tenantId: string, goalId: string): string;
  eventsWildcard: string;
  /** Every goal event of one tenant. */
  tenantEventsWildcard(tenantId: string): string;
  outcomesSubject: string;
  trainingSubject: string;
  learningWildcard: string;
  /** Dead-letter subject of a capability, or of a reserved queue name like `_results`. */
  dlqSubject(name: string): string;
  dlqWildcard: string;
  cancelSubject(goalId: string): string;
  cancelWildcard: string;
  /** Where the hand-back of the `capability` job stored at `seq` is recorded (`Delivery.previousDelivery`). */
  handBackSubject(capability: string, seq: number): string;
  handBacksWildcard: string;
  /** Capability of a job subject (not a pinned one), or undefined if the subject is not a job subject. */
  capabilityOf(subject: string): string | undefined;
}

const prefixPattern = /^[a-z][a-z0-9_-]*$/i;
/** One subject token of an id: no dots, wildcards or whitespace. */
const tokenPattern = /^[A-Za-z0-9_-]{1,128}$/;

export function busNames(prefix = "agentmesh"): BusNames {
  if (!prefixPattern.test(prefix)) {
    throw new MeshError(Code.InvalidArgument, `invalid bus prefix ${JSON.stringify(prefix)}`);
  }
  const s = prefix.toUpperCase().replace(/-/g, "_");
  const jobsRoot = `${prefix}.jobs.`;
  const resultsRoot = `${prefix}.results.`;
  const pinnedRoot = `${jobsRoot}_v.`;
  return {
    prefix,
    streams: {
      jobs: `${s}_JOBS`,
      results: `${s}_RESULTS`,
      events: `${s}_EVENTS`,
      learning: `${s}_LEARNING`,
      dlq: `${s}_DLQ`,
      handBacks: `${s}_HANDBACKS`,
    },
    jobSubject: (capability) => jobsRoot + checkCapability(capability),
    pinnedJobSubject: (capability, version) =>
      `${pinnedRoot}${versionToken(version)}.${checkCapability(capability)}`,
    pinnedOf: (subject) => {
      if (!subject.startsWith(pinnedRoot)) return undefined;
      const rest = subject.slice(pinnedRoot.length);
      const dot = rest.indexOf(".");
      if (dot <= 0) return undefined;
      return { versionToken: rest.slice(0, dot), capability: rest.slice(dot + 1) };
    },
    jobsWildcard: `${prefix}.jobs.>`,
    resultSubject: (goalId, publisher = "anonymous") =>
      `${resultsRoot}${checkToken("publisher", publisher)}.${checkToken("goal id", goalId)}`,
    resultsWildcard: `${prefix}.results.>`,
    resultPublisherOf: (subject) => {
      if (!subject.startsWith(resultsRoot)) return undefined;
      const tokens = subject.slice(resultsRoot.length).split(".");
      return tokens.length === 2 ? tokens[0] : undefined;
    },
    eventSubject: (tenantId, goalId) =>
      `${prefix}.events.${checkToken("tenant id", tenantId)}.${checkToken("goal id", goalId)}`,
    eventsWildcard: `${prefix}.events.>`,
    tenantEventsWildcard: (tenantId) => `${prefix}.events.${checkToken("tenant id", tenantId)}.>`,
    outcomesSubject: `${prefix}.learning.outcomes`,
    trainingSubject: `${prefix}.learning.training`,
    learningWildcard: `${prefix}.learning.>`,
    dlqSubject: (name) => `${prefix}.dlq.${name}`,
    dlqWildcard: `${prefix}.dlq.>`,
    cancelSubject: (goalId) => `${prefix}.control.cancel.${checkToken("goal id", goalId)}`,
    cancelWildcard: `${prefix}.control.cancel.*`,
    handBackSubject: (capability, seq) =>
      `${prefix}.handbacks.${Math.trunc(seq)}.${checkCapability(capability)}`,
    handBacksWildcard: `${prefix}.handbacks.>`,
    capabilityOf: (subject) =>
      subject.startsWith(jobsRoot) && !subject.startsWith(pinnedRoot)
        ? subject.slice(jobsRoot.length)
        : undefined,
  };
}

/** Throws INVALID_ARGUMENT unless `capability` is usable as subject tokens. */
export function checkCapability(capability: string): string {
  const problem = capabilityNameProblem(capability);
  if (problem !== undefined) {
    throw new MeshError(Code.InvalidArgument, `invalid ${problem}`);
  }
  return capability;
}

/** Whether `capability` is a capability name (the contract's rule, `lib/plan/capability.ts`). */
export function isValidCapability(capability: string): boolean {
  return isCapabilityName(capability);
}

function checkToken(what: string, value: string): string {
  if (!tokenPattern.test(value)) {
    throw new MeshError(
      Code.InvalidArgument,
      `invalid ${what} ${JSON.stringify(value)}: expected 1-128 letters, digits, "_" or "-"`,
    );
  }
  return value;
}

/**
 * A semver version as one subject token: `.` → `_`, `+` → `__` (semver has
 * neither `_` nor `..`, so no two versions share a token). Throws
 * INVALID_ARGUMENT for anything that is not a semver version.
 */
export function versionToken(version: string): string {
  if (!isVersion(version)) {
    throw new MeshError(
      Code.InvalidArgument,
      `invalid agent version ${JSON.stringify(version)}: a version queue needs a semver version`,
    );
  }
  return version.replace(/\+/g, "__").replace(/\./g, "_");
}

/** The durable consumer of one agent version's jobs of a capability (`jobs_text_summarize__v2_0_0`). */
export function pinnedConsumerName(capability: string, version: string): string {
  return `${jobConsumerName(capability)}__v${versionToken(version)}`;
}

/**
 * The durable consumer name of a capability. Dots become underscores
 * (`text.summarize` → `jobs_text_summarize`); a capability that already holds
 * an underscore gets a short hash so `a.b` and `a_b` never share a consumer.
 */
export function jobConsumerName(capability: string): string {
  const base = `jobs_${capability.replace(/\./g, "_")}`;
  if (!capability.includes("_")) return base;
  const hash = createHash("sha256").update(capability).digest("hex").slice(0, 8);
  return `${base}_${hash}`;
}
