/**
 * The SLO file (`ops/slo.yaml`): each objective names its indicator (goal
 * success or goal latency), what it covers (a tenant, a goal kind, both or the
 * whole mesh), the objective and the window. Parsed strictly: an unknown key,
 * a bad window or a latency threshold that is not a histogram bucket is an
 * INVALID_ARGUMENT naming the SLO, so the rules are never generated from a typo.
 *
 * @example
 * const spec = parseSloSpec(await readFile("ops/slo.yaml", "utf8"));
 * spec.slos[0]; // { name: "goals", sli: "success", objective: 0.99, windowHours: 720, ... }
 */
import { parse } from "yaml";
import { Code, MeshError } from "../errors/mesh-error.js";
import { goalBuckets } from "../telemetry/slis.js";

export type SliKind = "success" | "latency";

export interface Slo {
  /** `[a-z0-9-]`, the `slo` label of its recorded series and alerts. */
  name: string;
  description: string;
  sli: SliKind;
  /** A latency SLO: the goal finishes within this many seconds (a bucket of the histogram). */
  thresholdSeconds?: number;
  /** Fraction of good goals, in (0, 1), e.g. 0.99. */
  objective: number;
  /** The window in the file's words, e.g. `30d`. */
  window: string;
  windowHours: number;
  /** Only this tenant's goals (its `tenant` label: one of AGENTMESH_METRICS_TENANTS). */
  tenant?: string;
  /** Only goals of this kind. */
  kind?: string;
}

export interface SloSpec {
  /** Prefix of each alert's `runbook_url` (e.g. where the docs are served); `docs/runbooks` when empty. */
  runbookBaseUrl: string;
  slos: Slo[];
}

const topKeys = new Set(["runbookBaseUrl", "slos"]);
const sloKeys = new Set([
  "name",
  "description",
  "sli",
  "thresholdSeconds",
  "objective",
  "window",
  "tenant",
  "kind",
]);
const namePattern = /^[a-z0-9][a-z0-9-]{0,62}$/;
const labelValuePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function parseSloSpec(text: string): SloSpec {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw bad(`not YAML: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw bad("expected a mapping with `slos`");
  for (const k of Object.keys(doc))
    if (!topKeys.has(k)) throw bad(`unknown key ${JSON.stringify(k)}`);
  const base = doc.runbookBaseUrl ?? "";
  if (typeof base !== "string") throw bad("runbookBaseUrl must be a string");
  if (!Array.isArray(doc.slos) || doc.slos.length === 0)
    throw bad("`slos` must be a non-empty list");
  const seen = new Set<string>();
  const slos = doc.slos.map((raw, i) => {
    const slo = parseSlo(raw, i);
    if (seen.has(slo.name)) throw bad(`SLO ${slo.name}: the name is used twice`);
    seen.add(slo.name);
    return slo;
  });
  return { runbookBaseUrl: base.replace(/\/+$/, ""), slos };
}

function parseSlo(raw: unknown, index: number): Slo {
  if (!isObject(raw)) throw bad(`slos[${index}] must be a mapping`);
  const name = raw.name;
  if (typeof name !== "string" || !namePattern.test(name)) {
    throw bad(`slos[${index}].name must match ${namePattern}`);
  }
  const at = (msg: string) => bad(`SLO ${name}: ${msg}`);
  for (const k of Object.keys(raw))
    if (!sloKeys.has(k)) throw at(`unknown key ${JSON.stringify(k)}`);
  const sli = raw.sli;
  if (sli !== "success" && sli !== "latency") throw at("sli must be `success` or `latency`");
  const objective = raw.objective;
  if (typeof objective !== "number" || !(objective > 0 && objective < 1)) {
    throw at("objective must be a number between 0 and 1, e.g. 0.99");
  }
  const window = String(raw.window ?? "");
  const windowHours = parseWindowHours(window);
  // The slow-burn alert looks back 3 days: a shorter window could not be judged.
  if (windowHours === undefined || windowHours < 72 || windowHours > 90 * 24) {
    throw at("window must be between 3d and 90d, in days or hours (e.g. 30d, 168h)");
  }
  const slo: Slo = {
    name,
    description: typeof raw.description === "string" ? raw.description : name,
    sli,
    objective,
    window,
    windowHours,
  };
  if (sli === "latency") {
    const t = raw.thresholdSeconds;
    if (typeof t !== "number" || !goalBuckets.includes(t)) {
      throw at(
        `a latency SLO needs thresholdSeconds, one of the histogram's buckets: ${goalBuckets.join(", ")}`,
      );
    }
    slo.thresholdSeconds = t;
  } else if (raw.thresholdSeconds !== undefined) {
    throw at("thresholdSeconds is only for a latency SLO");
  }
  for (const key of ["tenant", "kind"] as const) {
    const v = raw[key];
    if (v === undefined) continue;
    if (typeof v !== "string" || !labelValuePattern.test(v))
      throw at(`${key} must be a plain name`);
    slo[key] = v;
  }
  return slo;
}

/** `30d` → 720, `36h` → 36; undefined when it is neither. */
export function parseWindowHours(window: string): number | undefined {
  const m = /^(\d{1,4})([dh])$/.exec(window.trim());
  if (!m) return undefined;
  return Number(m[1]) * (m[2] === "d" ? 24 : 1);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function bad(message: string): MeshError {
  return new MeshError(Code.InvalidArgument, `ops/slo.yaml: ${message}`);
}
