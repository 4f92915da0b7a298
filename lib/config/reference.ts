/**
 * `docs/configuration.md`, rendered from the settings registry: one table per
 * section, every variable with its default, the processes that read it and
 * what it means. `agentmesh config reference > docs/configuration.md`
 * regenerates it; a test fails when the committed file differs.
 */
import { allSettings, type Section, type Setting } from "./settings.js";

const readersText: Record<string, string> = {
  all: "every process",
  serve: "`serve <component>`",
  gateway: "`serve gateway`",
  registry: "`serve registry`",
  planner: "`serve planner`",
  executor: "`serve executor`",
  learning: "`serve learning`",
  agent: "`agent <name>`",
  cli: "CLI",
  dev: "`dev`",
};

export function renderConfigurationReference(): string {
  const sections = new Map<Section, Setting<unknown>[]>();
  for (const s of allSettings) {
    const list = sections.get(s.section) ?? [];
    list.push(s);
    sections.set(s.section, list);
  }
  const cell = (t: string) => t.replaceAll("|", "\\|");
  const lines = [
    "# Configuration reference",
    "",
    "<!-- Generated from lib/config/settings.ts by `agentmesh config reference`; do not edit by hand. -->",
    "",
    "Every process is configured by environment variables only; nothing needs to be set for",
    "`npm start`. In Kubernetes the shared values come from the `agentmesh-config` ConfigMap",
    "(`k8s/base/config.yaml`) and each Deployment adds its own. An empty value means unset; a",
    "malformed value stops the process at start with `INVALID_ARGUMENT` naming the variable.",
    "",
    "Processes: `serve <component>` is `agentmesh serve registry|planner|executor|learning`,",
    "`serve gateway` the public gateway, `agent <name>` a built-in agent, `dev` the embedded mesh,",
    "CLI the client commands (`goal`, `keys`, `db`, ...).",
    "",
  ];
  for (const [section, list] of sections) {
    lines.push(
      `## ${section}`,
      "",
      "| variable | default | read by | meaning |",
      "| --- | --- | --- | --- |",
    );
    for (const s of list) {
      const readers = s.readers.map((r) => readersText[r] ?? r).join(", ");
      lines.push(
        `| \`${s.name}\` | ${cell(s.defaultText)} | ${readers} | ${cell(s.description)} |`,
      );
    }
    lines.push("");
  }
  return lines.join("\n");
}
