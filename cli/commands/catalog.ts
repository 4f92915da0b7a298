/**
 * `agentmesh catalog [--out DIR]`: writes the tool catalog of the built-in
 * agents and goal kinds as `catalog.md` and `catalog.json` into DIR (default
 * `docs/catalog`, the committed copy a test keeps current).
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

const usage = `agentmesh catalog [--out DIR]

  Writes catalog.md and catalog.json (every capability of the built-in agents and every
  built-in goal kind: descriptions, schemas, owners, versions) into DIR (default docs/catalog).`;

/** The built-in catalog. */
export async function builtinCatalog() {
  const agents = Object.values(builtinAgents).map((make) => make());
  return buildCatalog(agents, await loadPlaybookDir(builtinPlaybookDir));
}

export const catalog: Command = {
  name: "catalog",
  summary: "write the tool catalog (capabilities and goal kinds) as Markdown and JSON",
  usage,
  async run(args) {
    let out = join("docs", "catalog");
    for (let i = 0; i < args.length; i++) {
      if (args[i] === "--out" && args[i + 1]) out = args[++i] as string;
      else throw new UsageError(`unexpected argument ${args[i]}`);
    }
    const c = await builtinCatalog();
    await mkdir(out, { recursive: true });
    await writeFile(join(out, "catalog.md"), renderCatalogMarkdown(c));
    await writeFile(join(out, "catalog.json"), catalogJson(c));
    console.log(
      `wrote ${join(out, "catalog.md")} and catalog.json: ${c.capabilities.length} capabilities, ${c.goalKinds.length} goal kinds`,
    );
    return 0;
  },
};
