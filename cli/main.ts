/**
 * The `agentmesh` command-line interface: a small dispatcher over the
 * sub-commands in `cli/commands/`.
 */
import { UsageError } from "./command.js";
import { commands } from "./commands/index.js";

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return ["usage: agentmesh <command> [options]", "", "commands:", ...lines, ""].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    const topic = commands.find((c) => c.name === rest[0]);
    console.log(topic ? topic.usage : help());
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    console.error(`agentmesh: unknown command ${JSON.stringify(name)}\n\n${help()}`);
    return 2;
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

process.exitCode = await main(process.argv.slice(2));
