/**
 * Loads the agent a user's file defines, for `agentmesh agent run <file>`: the
 * file's default export, else its one named export made by `defineAgent`
 * (`--export NAME` picks one of several). TypeScript files load through tsx.
 *
 * @example
 * const agent = await loadAgentFile("./my-agent.ts");
 */
import { existsSync } from "node:fs";
import { extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { AgentDefinition } from "../../sdk/agent/define-agent.js";
import { UsageError } from "../command.js";

const isAgent = (value: unknown): value is AgentDefinition =>
  typeof value === "object" &&
  value !== null &&
  (value as { kind?: unknown }).kind === "agentmesh.agent";

export async function loadAgentFile(file: string, exportName?: string): Promise<AgentDefinition> {
  const path = resolve(file);
  if (!existsSync(path)) throw new UsageError(`no such file ${file}`);
  if ([".ts", ".mts", ".cts", ".tsx"].includes(extname(path))) {
    const { register } = await import("tsx/esm/api");
    register();
  }
  const module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  if (exportName !== undefined) {
    const chosen = module[exportName];
    if (!isAgent(chosen)) {
      throw new UsageError(
        `${file}: export ${JSON.stringify(exportName)} is not made by defineAgent`,
      );
    }
    return chosen;
  }
  if (isAgent(module.default)) return module.default;
  const named = Object.entries(module).filter(([, v]) => isAgent(v));
  if (named.length === 1) return named[0]![1] as AgentDefinition;
  if (named.length === 0) {
    throw new UsageError(
      `${file} exports no agent: export default (or one named export of) defineAgent({...})`,
    );
  }
  throw new UsageError(
    `${file} exports several agents (${named.map(([k]) => k).join(", ")}): pick one with --export NAME`,
  );
}
