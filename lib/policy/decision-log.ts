/**
 * The decision log: one JSON line per decision in OPA's decision-log shape
 * (`decision_id`, `path`, `input`, `result`, `bundles.<name>.revision`,
 * `timestamp`, `metrics`, `labels`, and `error` when the evaluation failed),
 * written through its own pino
 * destination so it can be shipped to a SIEM apart from the process log.
 * Every denial is written (but for questions that refuse nothing, see
 * `RecordOptions`); allows are sampled. Secret-looking fields of the
 * input are redacted before the line is written.
 *
 * @example
 * const log = createDecisionLog({ destination: "/var/log/agentmesh/decisions.log", sampleAllows: 0.01 });
 * log.record(input, decision);
 * await log.close();
 */
import { randomUUID } from "node:crypto";
import { pino } from "pino";
import type { EngineDecision } from "./engine.js";
import type { PolicyInput } from "./input.js";
import { redactSecrets } from "./redact-secrets.js";

export interface DecisionLogOptions {
  /**
   * Where lines go: a pino destination stream, a file path (created with its
   * directory, appended to), or `"stdout"` / `"stderr"`. Default `"stdout"`.
   */
  destination?: pino.DestinationStream | string;
  /** Fraction of allows written, 0..1. Denials are always written. Default 0.01. */
  sampleAllows?: number;
  /** Labels on every line (OPA's `labels`), merged under each record's own (`component`, `instance`). */
  labels?: Record<string, string>;
  /** Bundle name under `bundles` in each line. Default `"agentmesh"`. */
  bundleName?: string;
  /** Randomness for sampling (tests). Default `Math.random`. */
  random?: () => number;
}

/** One line of the decision log. */
export interface DecisionLogEntry {
  decision_id: string;
  path: string;
  input: PolicyInput;
  result: { allow: boolean; reason: string; principal_trusted: boolean };
  bundles: Record<string, { revision: string }>;
  timestamp: string;
  metrics: { timer_rego_query_eval_ns: number };
  /** Who decided: `component` (executor, gateway, ...) and `instance` (the replica), plus the log's own labels. */
  labels: Record<string, string>;
  /** Why the evaluation failed (the call was denied); absent when the policy answered. */
  error?: { code: "evaluation_error"; message: string };
  /** Whether the decision cache answered (not in OPA's shape; ignored by OPA tooling). */
  cached: boolean;
}

export interface DecisionLog {
  /**
   * Writes the decision if it is a denial or sampled; returns whether it was
   * written. `labels` say who decided (`{ component, instance }`).
   */
  record(
    input: PolicyInput,
    decision: EngineDecision,
    evalNs?: number,
    labels?: Record<string, string>,
    options?: RecordOptions,
  ): boolean;
  /** Flushes and closes the destination (when the log opened it). */
  close(): Promise<void>;
}

/** How one decision is written. */
export interface RecordOptions {
  /**
   * Sample a "no" like an allow: for questions whose "no" refuses nothing (may
   * this caller see sensitive fields in clear? No: they are redacted, and the
   * read is audited for tenants with encryption at rest). Default false: every
   * denial is written.
   */
  sampleDenials?: boolean;
}

/** Where the policy decides; the OPA `path` of every line. */
const decisionPath = "agentmesh/authz/decision";

export function createDecisionLog(options: DecisionLogOptions = {}): DecisionLog {
  const { destination = "stdout", sampleAllows = 0.01, labels = {} } = options;
  if (!(sampleAllows >= 0 && sampleAllows <= 1)) {
    throw new RangeError(`sampleAllows must be within 0..1, got ${sampleAllows}`);
  }
  const bundleName = options.bundleName ?? "agentmesh";
  const random = options.random ?? Math.random;
  // Only a file the log opened is closed by it; never the process's stdout or stderr.
  const owned =
    typeof destination === "string" && destination !== "stdout" && destination !== "stderr";
  const stream =
    typeof destination !== "string"
      ? destination
      : destination === "stdout"
        ? pino.destination({ dest: 1, sync: false })
        : destination === "stderr"
          ? pino.destination({ dest: 2, sync: false })
          : pino.destination({ dest: destination, mkdir: true, append: true, sync: false });

  return {
    record(input, decision, evalNs = 0, own, how) {
      const sampled = decision.allow || how?.sampleDenials === true;
      if (sampled && !(sampleAllows > 0 && random() < sampleAllows)) return false;
      const entry: DecisionLogEntry = {
        decision_id: randomUUID(),
        path: decisionPath,
        input: redactSecrets(input),
        result: {
          allow: decision.allow,
          reason: decision.reason,
          principal_trusted: decision.principalTrusted,
        },
        bundles: { [bundleName]: { revision: decision.revision ?? "" } },
        timestamp: new Date(input.time.unix_ms).toISOString(),
        metrics: { timer_rego_query_eval_ns: Math.round(evalNs) },
        labels: own ? { ...labels, ...own } : labels,
        cached: decision.cached,
      };
      if (decision.error !== undefined) {
        entry.error = { code: "evaluation_error", message: decision.error };
      }
      // Exactly the OPA shape, so no pino logger (it adds level, time, pid):
      // the line goes straight to pino's destination stream.
      stream.write(`${JSON.stringify(entry)}\n`);
      return true;
    },
    async close() {
      const boom = stream as unknown as {
        end?: () => void;
        flush?: (cb: (err?: Error) => void) => void;
        once?: (event: string, cb: () => void) => void;
      };
      if (owned && boom.end && boom.once) {
        // SonicBoom: wait for the fd to close so the file is complete on return.
        await new Promise<void>((resolve) => {
          boom.once?.("close", resolve);
          boom.end?.();
        });
      } else if (boom.flush) {
        await new Promise<void>((resolve) => boom.flush?.(() => resolve()));
      }
    },
  };
}
