/**
 * What the gateway-facing commands share: a client from `AGENTMESH_URL` and
 * `AGENTMESH_API_KEY` (default the embedded gateway and `.agentmesh/admin.key`),
 * flag parsing, and errors printed as `code: message`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { loadConfig } from "../../lib/config/config.js";
import { createClient, type MeshClient } from "../../sdk/client/index.js";
import { UsageError } from "../command.js";

/** A client of the gateway named by the environment. */
export function meshFromEnv(env: NodeJS.ProcessEnv = process.env): MeshClient {
  const config = loadConfig(env);
  const baseUrl = env.AGENTMESH_URL ?? `http://127.0.0.1:${config.ports.gateway}`;
  let apiKey = env.AGENTMESH_API_KEY;
  if (!apiKey) {
    try {
      apiKey = readFileSync(join(config.home, "admin.key"), "utf8").trim();
    } catch {
      throw new UsageError(
        "set AGENTMESH_API_KEY (or run `agentmesh dev`, which writes .agentmesh/admin.key)",
      );
    }
  }
  return createClient({ baseUrl, apiKey, defaultTimeoutMs: 30_000 });
}

type Options = NonNullable<ParseArgsConfig["options"]>;
type Parsed<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>
>;

/** `parseArgs` with usage errors instead of exceptions. */
export function flags<O extends Options>(args: string[], options: O): Parsed<O> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Runs `fn`, printing an RPC failure as `code: message` and returning exit code 1. */
export async function reporting(fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    if (err instanceof ConnectError || (err as Error)?.name === "ConnectError") {
      const e = ConnectError.from(err);
      console.error(`${codeName(e.code)}: ${e.rawMessage}`);
      return 1;
    }
    throw err;
  }
}

function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** Prints `rows` as an aligned table. */
export function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
