/**
 * `agentmesh catalog [--out DIR] [--live]`: writes the tool catalog of the
 * built-in agents and goal kinds as `catalog.md` and `catalog.json` into DIR
 * (default `docs/catalog`, the committed copy a test keeps current). With
 * `--live` each capability's reliability is the registry's (the best live
 * agent's score, through the gateway at AGENTMESH_URL); without, it is "not
 * measured".
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { builtinAgents } from "../../agents/builtin.js";
import {
  buildCatalog,
  catalogJson,
  renderCatalogMarkdown,
} from "../../lib/catalog/tool-catalog.js";
import { builtinPlaybookDir, loadPlaybookDir } from "../../services/planner/domain/index.js";
import { type Command, UsageError } from "../command.js";
import { meshFromEnv, reporting } from "./gateway-client.js";

const usage = `agentmesh catalog [--out DIR] [--live]   (--live: AGENTMESH_URL, AGENTMESH_API_KEY)

  Writes catalog.md and catalog.json (every capability of the built-in agents and every
  built-in goal kind: descriptions, schemas, owners, versions, side effects, scopes, rate
  limits) into DIR (default docs/catalog). --live adds each capability's reliability from
  the registry of a running mesh (its best live agent's score).`;

/** The built-in catalog. */
export async function builtinCatalog(reliability?: (capability: string) => number | undefined) {
  const agents = Object.values(builtinAgents).map((make) => make());
  return buildCatalog(agents, await loadPlaybookDir(builtinPlaybookDir), reliability);
}

/** Each capability's best score among the registry's live agents. */
async function liveReliability(): Promise<(capability: string) => number | undefined> {
  const { agents } = await (await meshFromEnv()).registry.listAgents({});
  const best = new Map<string, number>();
  for (const agent of agents) {
    for (const [capability, score] of Object.entries(agent.reliability)) {
      best.set(capability, Math.max(score, best.get(capability) ?? 0));
    }
  }
  return (capability) => best.get(capability);
}

export const catalog: Command = {
  name: "catalog",
  summary: "write the tool catalog (capabilities and goal kinds) as Markdown and JSON",
  usage,
  async run(args) {
    let out = join("docs", "catalog");
    let live = false;
    for (let i = 0; i < args.length; i++) {
      if (args[i] === "--out" && args[i + 1]) out = args[++i] as string;
      else if (args[i] === "--live") live = true;
      else throw new UsageError(`unexpected argument ${args[i]}`);
    }
    return reporting(async () => {
      const c = await builtinCatalog(live ? await liveReliability() : undefined);
      await mkdir(out, { recursive: true });
      await writeFile(join(out, "catalog.md"), renderCatalogMarkdown(c));
      await writeFile(join(out, "catalog.json"), catalogJson(c));
      console.log(
        `wrote ${join(out, "catalog.md")} and catalog.json: ${c.capabilities.length} capabilities, ${c.goalKinds.length} goal kinds`,
      );
      return 0;
    });
  },
};
