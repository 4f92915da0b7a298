/**
 * The playbook file format: one YAML (or JSON) document per file, the proto
 * JSON form of the `Playbook` message, the same shape `PutPlaybook` takes and
 * `agentmesh playbook show` prints. Canonical keys are the proto JSON names
 * (`goalKind`, `stepId`, `dependsOn`, `backoffMultiplier`...), durations proto
 * JSON strings (`"30s"`, `"0.2s"`). Also accepted: the proto field names
 * (`goal_kind`, `step_id`: any proto JSON parser takes both), and from the
 * older file format `id` for `stepId`, `multiplier` for `backoffMultiplier`
 * and durations like `"200ms"` or `"2m"`. Unknown keys are errors (a typo must
 * not silently drop a retry policy). Every error names the file, the field path
 * and the line.
 *
 * @example
 * ```yaml
 * goalKind: summarize
 * description: Summarize a text.
 * inputSchema:
 *   type: object
 *   required: [text]
 *   properties: { text: { type: string, minLength: 1 } }
 * strategies:
 *   - name: solo
 *     steps:
 *       - stepId: summarize
 *         capability: text.summarize
 *         input: { text: "${input.text}", sentences: "${input.sentences}" }
 *         retry: { maxAttempts: 3, initialBackoff: 0.2s, maxBackoff: 5s, backoffMultiplier: 2 }
 *         timeout: 30s
 * ```
 * ```ts
 * const playbook = parsePlaybookYaml(text, "playbooks/summarize.yaml");
 * ```
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step templates in examples
import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { LineCounter, parseDocument } from "yaml";
import { RetryPolicySchema } from "../../../gen/agentmesh/v1/common_pb.js";
import {
  type Playbook,
  PlaybookSchema,
  type Step,
  StepSchema,
  type Strategy,
  StrategySchema,
  SubGoalSchema,
} from "../../../gen/agentmesh/v1/planner_pb.js";
import type { MeshError } from "../../../lib/errors/mesh-error.js";
import { parseDuration } from "./duration.js";
import { validatePlaybook } from "./validate-playbook.js";
import { type FieldPath, type Violation, violationsError } from "./violation.js";

/** Largest playbook file read; a playbook is a page of YAML, not a data set. */
export const maxPlaybookBytes = 256 * 1024;

type Located = Violation & { line?: number };

/**
 * Parses and validates one playbook file. Throws INVALID_ARGUMENT listing
 * every problem as `file: path (line n): message`; `details.file` and
 * `details.violations` carry the same for tools.
 */
export function parsePlaybookYaml(text: string, file: string): Playbook {
  if (text.length > maxPlaybookBytes) {
    throw fileError(file, [{ path: [], message: `file is larger than ${maxPlaybookBytes} bytes` }]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw fileError(
      file,
      doc.errors.map((e) => ({
        path: [],
        message: e.message.split("\n")[0]!,
        line: e.linePos?.[0].line,
      })),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw fileError(file, [{ path: [], message: (err as Error).message }]);
  }
  const violations: Violation[] = [];
  const playbook = readPlaybook(raw, violations);
  if (violations.length === 0) violations.push(...validatePlaybook(playbook));
  if (violations.length > 0) {
    const lineOf = (path: FieldPath): number | undefined => {
      // Walk up to the nearest node that exists (a missing key reports its parent).
      for (let n = path.length; n >= 0; n--) {
        const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] };
        if (node?.range !== undefined) return lineCounter.linePos(node.range[0]).line;
      }
      return undefined;
    };
    throw fileError(
      file,
      violations.map((v) => ({ ...v, line: lineOf(v.path) })),
    );
  }
  return playbook;
}

function fileError(file: string, violations: Located[]): MeshError {
  return violationsError(`invalid playbook file ${file}`, violations, { file });
}

/** The other spellings of a canonical key: its proto field name, and older names. */
const aliases: Record<string, readonly string[]> = {
  goalKind: ["goal_kind"],
  tenantId: ["tenant_id"],
  inputSchema: ["input_schema"],
  outputStep: ["output_step"],
  stepId: ["step_id", "id"],
  dependsOn: ["depends_on"],
  subGoal: ["sub_goal"],
  maxAttempts: ["max_attempts"],
  initialBackoff: ["initial_backoff"],
  maxBackoff: ["max_backoff"],
  backoffMultiplier: ["backoff_multiplier", "multiplier"],
  nonRetryableCodes: ["non_retryable_codes"],
};

/** Reads fields by path, collecting violations instead of stopping at the first. */
class Reader {
  /** For each record `object` returned: canonical key → the key as written (for error paths). */
  readonly #written = new WeakMap<object, Map<string, string>>();

  constructor(readonly out: Violation[]) {}

  /** A mapping with its keys made canonical; `allowed` lists the canonical keys. */
  object(value: unknown, at: FieldPath, allowed: readonly string[]): Record<string, unknown> {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      this.out.push({ path: at, message: `expected a mapping, got ${kindOf(value)}` });
      return {};
    }
    const record: Record<string, unknown> = {};
    const written = new Map<string, string>();
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      const canonical = allowed.includes(key)
        ? key
        : allowed.find((k) => aliases[k]?.includes(key));
      if (canonical === undefined) {
        this.out.push({
          path: [...at, key],
          message: `unknown field "${key}" (expected one of: ${allowed.join(", ")})`,
        });
        continue;
      }
      const other = written.get(canonical);
      if (other !== undefined) {
        this.out.push({
          path: [...at, key],
          message: `"${key}" and "${other}" are the same field; write it once (as "${canonical}")`,
        });
        continue;
      }
      written.set(canonical, key);
      record[canonical] = v;
    }
    this.#written.set(record, written);
    return record;
  }

  /** The path of a field of `record`, with the key as the file wrote it. */
  path(record: Record<string, unknown>, key: string, at: FieldPath): FieldPath {
    return [...at, this.#written.get(record)?.get(key) ?? key];
  }

  string(record: Record<string, unknown>, key: string, at: FieldPath, required = false): string {
    const v = record[key];
    if (v === undefined || v === null) {
      if (required)
        this.out.push({ path: this.path(record, key, at), message: `"${key}" is required` });
      return "";
    }
    if (typeof v !== "string") {
      this.out.push({
        path: this.path(record, key, at),
        message: `expected a string, got ${kindOf(v)}`,
      });
      return "";
    }
    return v;
  }

  bool(record: Record<string, unknown>, key: string, at: FieldPath): boolean {
    const v = record[key];
    if (v === undefined || v === null) return false;
    if (typeof v !== "boolean") {
      this.out.push({
        path: this.path(record, key, at),
        message: `expected true or false, got ${kindOf(v)}`,
      });
      return false;
    }
    return v;
  }

  number(
    record: Record<string, unknown>,
    key: string,
    at: FieldPath,
    opts: { integer?: boolean; min?: number },
  ): number | undefined {
    const v = record[key];
    if (v === undefined || v === null) return undefined;
    if (
      typeof v !== "number" ||
      !Number.isFinite(v) ||
      (opts.integer && !Number.isInteger(v)) ||
      (opts.min !== undefined && v < opts.min)
    ) {
      const what = opts.integer ? "an integer" : "a number";
      const bound = opts.min !== undefined ? ` ≥ ${opts.min}` : "";
      this.out.push({
        path: this.path(record, key, at),
        message: `expected ${what}${bound}, got ${show(v)}`,
      });
      return undefined;
    }
    return v;
  }

  duration(record: Record<string, unknown>, key: string, at: FieldPath): number | undefined {
    const v = record[key];
    if (v === undefined || v === null) return undefined;
    const ms = parseDuration(v);
    if (ms === undefined) {
      this.out.push({
        path: this.path(record, key, at),
        message: `expected a duration like "200ms", "30s" or "2m", got ${show(v)}`,
      });
    }
    return ms;
  }

  strings(record: Record<string, unknown>, key: string, at: FieldPath): string[] {
    const v = record[key];
    if (v === undefined || v === null) return [];
    if (typeof v === "string") return [v];
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
      this.out.push({ path: this.path(record, key, at), message: "expected a list of strings" });
      return [];
    }
    return v as string[];
  }

  list(record: Record<string, unknown>, key: string, at: FieldPath, required = false): unknown[] {
    const v = record[key];
    if (v === undefined || v === null) {
      if (required)
        this.out.push({ path: this.path(record, key, at), message: `"${key}" is required` });
      return [];
    }
    if (!Array.isArray(v)) {
      this.out.push({
        path: this.path(record, key, at),
        message: `expected a list, got ${kindOf(v)}`,
      });
      return [];
    }
    return v;
  }

  json(record: Record<string, unknown>, key: string, at: FieldPath): JsonObject | undefined {
    const v = record[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) {
      this.out.push({
        path: this.path(record, key, at),
        message: `expected a mapping, got ${kindOf(v)}`,
      });
      return undefined;
    }
    if (!isJson(v)) {
      this.out.push({ path: this.path(record, key, at), message: "must contain only JSON values" });
      return undefined;
    }
    return v as JsonObject;
  }
}

const playbookKeys = [
  "goalKind",
  "description",
  "inputSchema",
  "strategies",
  "version",
  "tenantId",
];
const strategyKeys = ["name", "description", "collaborative", "outputStep", "steps"];
const stepKeys = [
  "stepId",
  "name",
  "capability",
  "subGoal",
  "input",
  "dependsOn",
  "retry",
  "timeout",
  "replicas",
  "versionRange",
];
const retryKeys = [
  "maxAttempts",
  "initialBackoff",
  "maxBackoff",
  "backoffMultiplier",
  "nonRetryableCodes",
];

/**
 * Maps an already parsed document (YAML or JSON) onto a `Playbook`, appending
 * shape errors to `out`. Semantic checks are `validatePlaybook`'s job.
 */
export function readPlaybook(raw: unknown, out: Violation[]): Playbook {
  const r = new Reader(out);
  const doc = r.object(raw, [], playbookKeys);
  // tenantId is accepted (what `playbook show` prints) but set by the server from the caller.
  return create(PlaybookSchema, {
    goalKind: r.string(doc, "goalKind", [], true),
    description: r.string(doc, "description", []),
    inputSchema: r.json(doc, "inputSchema", []),
    version: r.number(doc, "version", [], { integer: true, min: 0 }) ?? 0,
    strategies: r
      .list(doc, "strategies", [], true)
      .map((s, i) => readStrategy(r, s, ["strategies", i])),
  });
}

function readStrategy(r: Reader, raw: unknown, at: FieldPath): Strategy {
  const s = r.object(raw, at, strategyKeys);
  return create(StrategySchema, {
    name: r.string(s, "name", at, true),
    description: r.string(s, "description", at),
    collaborative: r.bool(s, "collaborative", at),
    outputStep: r.string(s, "outputStep", at),
    steps: r.list(s, "steps", at, true).map((step, j) => readStep(r, step, [...at, "steps", j])),
  });
}

function readStep(r: Reader, raw: unknown, at: FieldPath): Step {
  const s = r.object(raw, at, stepKeys);
  const step = create(StepSchema, {
    stepId: r.string(s, "stepId", at, true),
    name: r.string(s, "name", at),
    capability: r.string(s, "capability", at),
    input: r.json(s, "input", at),
    dependsOn: r.strings(s, "dependsOn", at),
    replicas: r.number(s, "replicas", at, { integer: true, min: 1 }) ?? 1,
    versionRange: r.string(s, "versionRange", at),
  });
  const timeout = r.duration(s, "timeout", at);
  if (timeout !== undefined) step.timeout = durationFromMs(timeout);
  if (s.subGoal !== undefined && s.subGoal !== null) {
    const gat = r.path(s, "subGoal", at);
    const g = r.object(s.subGoal, gat, ["kind", "input"]);
    step.subGoal = create(SubGoalSchema, {
      kind: r.string(g, "kind", gat, true),
      input: r.json(g, "input", gat),
    });
  }
  if (s.retry !== undefined && s.retry !== null) {
    const rat = r.path(s, "retry", at);
    const o = r.object(s.retry, rat, retryKeys);
    const initial = r.duration(o, "initialBackoff", rat);
    const max = r.duration(o, "maxBackoff", rat);
    step.retry = create(RetryPolicySchema, {
      maxAttempts: r.number(o, "maxAttempts", rat, { integer: true, min: 1 }) ?? 0,
      backoffMultiplier: r.number(o, "backoffMultiplier", rat, { min: 1 }) ?? 0,
      nonRetryableCodes: r.strings(o, "nonRetryableCodes", rat),
      ...(initial !== undefined ? { initialBackoff: durationFromMs(initial) } : {}),
      ...(max !== undefined ? { maxBackoff: durationFromMs(max) } : {}),
    });
  }
  return step;
}

function isJson(v: unknown): v is JsonValue {
  if (v === null || typeof v === "string" || typeof v === "boolean") return true;
  if (typeof v === "number") return Number.isFinite(v);
  if (Array.isArray(v)) return v.every(isJson);
  if (typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.values(v as object).every(isJson);
  }
  return false;
}

function kindOf(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "a mapping" : `${typeof v} ${show(v)}`;
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}
