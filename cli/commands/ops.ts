/**
 * `agentmesh ops rules|dashboards`: writes the Prometheus rules (from
 * `ops/slo.yaml`) and the Grafana dashboards under `ops/`; `--check` only
 * says whether the committed files are up to date.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { packagePath } from "../../lib/config/package-root.js";
import { type OpsOutput, opsFiles } from "../../lib/ops/ops-files.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh ops rules [--slo FILE] [--dir DIR] [--check]
agentmesh ops dashboards [--dir DIR] [--check]

rules       writes DIR/prometheus/{slo-recording,slo-alerts,known-failures}.yaml:
            recording rules of each SLO's error ratio, multi-window multi-burn-rate
            alerts (Google SRE workbook: 1h/5m at 14.4x and 6h/30m at 6x page,
            1d/2h at 3x and 3d/6h at 1x open a ticket, for a 30-day window) and the
            alerts of known failures, each with a runbook_url into docs/runbooks/
dashboards  writes DIR/grafana/dashboards/*.json and the provisioning file
            DIR/grafana/provisioning/dashboards.yaml

--slo FILE  the SLOs (default DIR/slo.yaml)
--dir DIR   the ops folder (default ops/ of this checkout)
--check     write nothing; exit 1 naming each file that differs`;

export const ops: Command = {
  name: "ops",
  summary: "generate Prometheus SLO and alert rules and Grafana dashboards under ops/",
  usage,
  async run(args) {
    const [what, ...rest] = args;
    if (what !== "rules" && what !== "dashboards")
      throw new UsageError("ops rules or ops dashboards?");
    let dir = packagePath("ops");
    let slo: string | undefined;
    let check = false;
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i];
      if (a === "--check") check = true;
      else if (a === "--dir" && rest[i + 1]) dir = resolve(rest[++i]!);
      else if (a === "--slo" && rest[i + 1]) slo = resolve(rest[++i]!);
      else throw new UsageError(`unexpected argument ${JSON.stringify(a)}`);
    }
    const sloYaml = what === "rules" ? await readFile(slo ?? join(dir, "slo.yaml"), "utf8") : "";
    const files = opsFiles(sloYaml, what as OpsOutput);
    const stale: string[] = [];
    for (const [path, text] of Object.entries(files)) {
      const target = join(dir, path);
      const current = await readFile(target, "utf8").catch(() => undefined);
      if (current === text) continue;
      stale.push(target);
      if (!check) {
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, text);
      }
    }
    if (check) {
      for (const s of stale) console.error(`stale: ${s} (run agentmesh ops ${what})`);
      return stale.length === 0 ? 0 : 1;
    }
    console.log(`${Object.keys(files).length} files in ${dir} (${stale.length} changed)`);
    return 0;
  },
};
