/**
 * The shape of one `agentmesh` sub-command. Each lives in its own file under
 * `cli/commands/` and is listed (lazily loaded) in `cli/commands/index.ts`.
 */
export interface Command {
  /** The word after `agentmesh`, e.g. "dev" or "certs". */
  name: string;
  /** One line for `agentmesh help`. */
  summary: string;
  /** Usage text printed by `agentmesh help <name>` and on bad arguments. */
  usage: string;
  /** Runs with the arguments after the name; resolves to the process exit code. */
  run(args: string[]): Promise<number>;
}

/** Thrown for bad command-line arguments; the CLI prints the usage and exits 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
