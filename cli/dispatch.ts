/**
 * The `agentmesh` command-line interface: a small dispatcher over the
 * sub-commands in `cli/commands/`, each loaded only when it runs
 * (`cli/main.ts` is the entry point that calls it).
 *
 * @example
 * process.exitCode = await main(["goal", "ls"]);
 */
import { UsageError } from "./command.js";
import { commands } from "./commands/index.js";

async function help(): Promise<string> {
  const all = await Promise.all(Object.values(commands).map((load) => load()));
  const width = Math.max(...all.map((c) => c.name.length));
  const lines = all.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return ["usage: agentmesh <command> [options]", "", "commands:", ...lines, ""].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    const topic = rest[0] === undefined ? undefined : commands[rest[0]];
    console.log(topic ? (await topic()).usage : await help());
    return 0;
  }
  const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!load) {
    console.error(`agentmesh: unknown command ${JSON.stringify(name)}\n\n${await help()}`);
    return 2;
  }
  const command = await load();
  // `--help` anywhere before a `--` (what follows belongs to a wrapped command) shows the usage.
  const own = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
  if (own.includes("--help") || own.includes("-h")) {
    console.log(`usage: ${command.usage}`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`agentmesh ${name}: ${err.message}\n\nusage: ${command.usage}`);
      return 2;
    }
    console.error(`agentmesh ${name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
