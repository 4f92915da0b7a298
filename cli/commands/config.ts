/**
 * `agentmesh config reference|check`: the configuration reference generated
 * from the settings registry, and a check of the current environment (every
 * set variable parsed as the processes would, and names that look like ours
 * but are not: a typo is otherwise silently ignored).
 */
import { renderConfigurationReference } from "../../lib/config/reference.js";
import { allSettings } from "../../lib/config/settings.js";
import { MeshError } from "../../lib/errors/mesh-error.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh config <reference|check>

  reference   print the configuration reference (docs/configuration.md) as Markdown
  check       parse every variable set in this environment; exit 1 on a bad value
              or an unknown AGENTMESH_* name`;

export const config: Command = {
  name: "config",
  summary: "print the configuration reference or check the environment",
  usage,
  async run(args) {
    const [action, ...rest] = args;
    if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(" ")}`);
    if (action === "reference") {
      process.stdout.write(renderConfigurationReference());
      return 0;
    }
    if (action !== "check")
      throw new UsageError(action ? `unknown action ${action}` : "missing action");
    const problems: string[] = [];
    for (const s of allSettings) {
      try {
        s.read(process.env);
      } catch (err) {
        problems.push(MeshError.from(err).message);
      }
    }
    const known = new Set(allSettings.map((s) => s.name));
    for (const name of Object.keys(process.env)) {
      if (name.startsWith("AGENTMESH_") && !known.has(name))
        problems.push(`${name}: not a setting`);
    }
    for (const p of problems) console.error(p);
    if (problems.length === 0) console.log(`ok: ${known.size} settings known`);
    return problems.length === 0 ? 0 : 1;
  },
};
