/**
 * What the gateway-facing commands share: a client from `AGENTMESH_URL` and
 * the `cli-api-key` secret (`AGENTMESH_API_KEY`; default the embedded gateway
 * and the bootstrap `admin-api-key`, `.agentmesh/admin.key`), flag parsing,
 * and errors printed as `code: message`.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { loadConfig } from "../../lib/config/config.js";
import { settings } from "../../lib/config/settings.js";
import { openSecrets } from "../../lib/secrets/open-secrets.js";
import { createClient, type MeshClient } from "../../sdk/client/index.js";
import { UsageError } from "../command.js";

/** A client of the gateway named by the environment, with the key the secret store holds for the CLI. */
export async function meshFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<MeshClient> {
  const config = loadConfig(env);
  const baseUrl = settings.url.read(env) ?? `http://127.0.0.1:${config.ports.gateway}`;
  const secrets = await openSecrets(env, config.home);
  let apiKey: string | undefined;
  try {
    apiKey = (await secrets.get("cli-api-key")) ?? (await secrets.get("admin-api-key"));
  } finally {
    await secrets.close();
  }
  if (!apiKey?.trim()) {
    throw new UsageError(
      `set ${settings.apiKey.name} (or run \`agentmesh dev\`, which writes .agentmesh/admin.key)`,
    );
  }
  return createClient({ baseUrl, apiKey: apiKey.trim(), defaultTimeoutMs: 30_000 });
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
