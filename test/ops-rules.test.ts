/**
 * The operations files: the committed Prometheus rules and Grafana dashboards
 * are what `agentmesh ops rules|dashboards` makes from their sources, every
 * alert links a runbook that exists and has a promtool unit test, and promtool
 * (`.ci/tools.sh`) checks every rule file and runs those tests. Without
 * promtool the promtool part fails under CI and skips loudly elsewhere.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { opsFiles } from "../lib/ops/ops-files.js";
import { burnFactor, burnWindows, errorRatioExpr } from "../lib/ops/prometheus-rules.js";
import { promqlNames } from "../lib/ops/promql-names.js";
import { parseSloSpec } from "../lib/ops/slo-spec.js";

const opsDir = join(import.meta.dirname, "../ops");
const rulesDir = join(opsDir, "prometheus");
const sloYaml = readFileSync(join(opsDir, "slo.yaml"), "utf8");

function findPromtool(): string | undefined {
  for (const candidate of [process.env.PROMTOOL, "promtool", join(homedir(), "go/bin/promtool")]) {
    if (!candidate) continue;
    try {
      execFileSync(candidate, ["--version"], { stdio: "ignore" });
      return candidate;
    } catch {
      // try the next one
    }
  }
  if (process.env.CI === "true")
    throw new Error("promtool not found; CI installs it with .ci/tools.sh");
  console.warn(
    "\n!!! promtool not found: SKIPPING `promtool check rules` and `promtool test rules`. Run .ci/tools.sh. !!!\n",
  );
  return undefined;
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const ruleFiles = readdirSync(rulesDir)
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => join(rulesDir, f));
const testFiles = readdirSync(join(rulesDir, "tests")).map((f) => join(rulesDir, "tests", f));
const rules: Rule[] = ruleFiles.flatMap((f) =>
  (parse(readFileSync(f, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap(
    (g) => g.rules,
  ),
);
const alerts = rules.filter((r) => r.alert);

describe("ops/ generated files", () => {
  it("are what `agentmesh ops rules` and `agentmesh ops dashboards` make from their sources", () => {
    for (const output of ["rules", "dashboards"] as const) {
      for (const [path, text] of Object.entries(opsFiles(sloYaml, output))) {
        const committed = readFileSync(join(opsDir, path), "utf8");
        expect(committed, `ops/${path} is stale: run agentmesh ops ${output}`).toBe(text);
      }
    }
  });

  it("burn at the SRE workbook's rates for a 30-day window: 14.4, 6, 3 and 1", () => {
    expect(burnWindows.map((w) => `${w.long}/${w.short}`)).toEqual([
      "1h/5m",
      "6h/30m",
      "1d/2h",
      "3d/6h",
    ]);
    expect(burnWindows.map((w) => burnFactor(720, w))).toEqual([14.4, 6, 3, 1]);
    expect(burnWindows.map((w) => w.severity)).toEqual(["page", "page", "ticket", "ticket"]);
  });

  it("scope each SLO's error ratio to its tenant and kind", () => {
    const [slo] = parseSloSpec(
      "slos: [{name: a, sli: latency, thresholdSeconds: 2.5, objective: 0.9, window: 7d, tenant: acme, kind: echo}]",
    ).slos;
    expect(errorRatioExpr(slo!, "5m")).toBe(
      '1 - (\n  sum(rate(agentmesh_goal_duration_seconds_bucket{le=~"2\\\\.5(\\\\.0)?",tenant="acme",kind="echo"}[5m]))\n  /\n' +
        '  sum(rate(agentmesh_goal_duration_seconds_count{tenant="acme",kind="echo"}[5m]))\n)',
    );
  });

  it("name metrics and labels that test/ops-metrics.test.ts can look for on /metrics", () => {
    const { metrics, clauseLabels } = promqlNames(
      'histogram_quantile(0.95, sum by (le, capability) (rate(x_seconds_bucket{tenant="$tenant",kind=~"a|b"}[5m]))) / on (slo) y:ratio_rate5m > 7 * 86400 and time() - z',
    );
    expect(Object.fromEntries([...metrics].map(([m, l]) => [m, [...l]]))).toEqual({
      x_seconds_bucket: ["tenant", "kind"],
      "y:ratio_rate5m": [],
      z: [],
    });
    expect([...clauseLabels]).toEqual(["le", "capability", "slo"]);
  });

  it("refuse an SLO file with a mistake, naming it", () => {
    const bad = {
      "slos: []": /non-empty list/,
      "slos: [{name: a, sli: success, objective: 99, window: 30d}]":
        /SLO a: objective must be a number between 0 and 1/,
      "slos: [{name: a, sli: success, objective: 0.99, window: 1h}]":
        /SLO a: window must be between 3d and 90d/,
      "slos: [{name: a, sli: latency, thresholdSeconds: 7, objective: 0.99, window: 30d}]":
        /buckets/,
      "slos: [{name: a, sli: success, objective: 0.99, window: 30d, tenat: acme}]":
        /unknown key "tenat"/,
      "slos: [{name: a, sli: success, objective: 0.99, window: 30d, tenant: 'a\"}'}]":
        /tenant must be a plain name/,
      "slos: [{name: a, sli: success, objective: 0.9, window: 7d}, {name: a, sli: success, objective: 0.9, window: 7d}]":
        /used twice/,
    };
    for (const [text, message] of Object.entries(bad)) {
      expect(() => parseSloSpec(text), text).toThrow(message);
    }
  });
});

describe("alerts", () => {
  it("each link a runbook in docs/runbooks/ that exists, and carry a severity", () => {
    const base = parseSloSpec(sloYaml).runbookBaseUrl || "docs/runbooks";
    expect(alerts.length).toBeGreaterThan(8);
    for (const a of alerts) {
      const url = a.annotations?.runbook_url ?? "";
      expect(url.startsWith(`${base}/`), `${a.alert}: ${url}`).toBe(true);
      const file = join(import.meta.dirname, "../docs/runbooks", url.slice(base.length + 1));
      expect(existsSync(file), `${a.alert}: ${file}`).toBe(true);
      expect(readFileSync(file, "utf8")).toContain(`# ${a.alert} (${a.labels?.severity})`);
      expect(["page", "ticket"]).toContain(a.labels?.severity);
    }
  });

  it("each have a promtool unit test that expects it to fire", () => {
    const tested = new Set<string>();
    for (const f of testFiles) {
      const doc = parse(readFileSync(f, "utf8")) as {
        tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
      };
      for (const t of doc.tests)
        for (const a of t.alert_rule_test ?? [])
          if (a.exp_alerts.length > 0) tested.add(a.alertname);
    }
    for (const a of alerts)
      expect(tested, `${a.alert} has no promtool test that fires it`).toContain(a.alert);
  });
});

const promtool = findPromtool();

describe.skipIf(!promtool)("promtool", () => {
  it("checks every rule file", () => {
    const out = execFileSync(promtool!, ["check", "rules", ...ruleFiles], { encoding: "utf8" });
    expect(out.match(/SUCCESS/g)).toHaveLength(ruleFiles.length);
  });

  it("passes every rule unit test in ops/prometheus/tests/", () => {
    const out = execFileSync(promtool!, ["test", "rules", ...testFiles], { encoding: "utf8" });
    expect(out.match(/SUCCESS/g)).toHaveLength(testFiles.length);
  });
});
