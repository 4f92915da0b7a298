/**
 * `agentmesh nats config`: writes the nats-server configuration of the mesh
 * from the policy's grants (mutual TLS, one user per SPIFFE identity with its
 * subject permissions, JetStream); see `lib/bus/nats-config.ts`.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { builtinAgents } from "../../agents/builtin.js";
import { renderNatsConfig } from "../../lib/bus/nats-config.js";
import { busGrantsFromPolicyData } from "../../lib/bus/nats-permissions.js";
import { natsServerIdentity } from "../../lib/bus/nats-tls.js";
import { loadConfig } from "../../lib/config/config.js";
import { packagePath } from "../../lib/config/package-root.js";
import { certPaths } from "../../lib/tls/dev-ca.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh nats config [options]

Prints (or writes with --out) the nats-server configuration for the mesh:
mutual TLS (clients verified against the mesh CA, their SPIFFE URI SAN mapped to
a user), per-identity subject permissions from the policy grants, JetStream.

options:
  --out <file>          write here instead of stdout
  --data <file>         policy data with the grants (default policies/data.json)
  --prefix <p>          bus prefix (default $AGENTMESH_BUS_PREFIX or agentmesh)
  --listen <host:port>  (default 0.0.0.0:4222)
  --store-dir <dir>     JetStream store (default $AGENTMESH_HOME/nats/jetstream)
  --cert-dir <dir>      where the server's certificate folder is (default $AGENTMESH_CERT_DIR);
                        the server uses <cert-dir>/${natsServerIdentity}/{tls.crt,tls.key,ca.crt}
  --tls-cert/--tls-key/--tls-ca <file>   explicit server certificate files instead
  --capability <cap>    a capability a wildcard grant must cover (repeatable); the
                        built-in agents' capabilities are always included
  --agent <name>        an agent identity granted by prefix, e.g. agent-mcp-github (repeatable)
  --agent-version <capability>@<version>
                        an agent version whose own job queue (steps with a version range,
                        ADR-015) its granted agents may consume (repeatable)

Trust domain and namespace come from AGENTMESH_TRUST_DOMAIN / AGENTMESH_NAMESPACE.
Clients connect with NATS_URL=tls://<host>:4222; the server's certificate is the
SPIFFE identity "${natsServerIdentity}". Regenerate and reload (nats-server --signal reload)
after changing grants or adding a capability under a wildcard grant.`;

const valued = [
  "out",
  "data",
  "prefix",
  "listen",
  "store-dir",
  "cert-dir",
  "tls-cert",
  "tls-key",
  "tls-ca",
  "capability",
  "agent",
  "agent-version",
];

export const nats: Command = {
  name: "nats",
  summary:
    "generate the nats-server configuration (mTLS, per-identity permissions) from the grants",
  usage,
  async run(args) {
    const [sub, ...rest] = args;
    if (sub !== "config") throw new UsageError("expected: agentmesh nats config [options]");
    const flags = parseFlags(rest);
    const one = (k: string) => flags[k]?.at(-1);
    const config = loadConfig();
    const dataPath = one("data") ?? packagePath("policies", "data.json");
    const grants = busGrantsFromPolicyData(JSON.parse(await readFile(dataPath, "utf8")));
    const serverCerts = certPaths(resolve(one("cert-dir") ?? config.certDir), natsServerIdentity);
    const builtin = Object.values(builtinAgents).flatMap((make) => Object.keys(make().skills));
    const text = renderNatsConfig({
      grants,
      prefix: one("prefix") ?? process.env.AGENTMESH_BUS_PREFIX ?? "agentmesh",
      trustDomain: config.trustDomain,
      namespace: config.namespace,
      listen: one("listen") ?? "0.0.0.0:4222",
      storeDir: resolve(one("store-dir") ?? join(config.home, "nats", "jetstream")),
      tls: {
        cert: resolve(one("tls-cert") ?? serverCerts.cert),
        key: resolve(one("tls-key") ?? serverCerts.key),
        ca: resolve(one("tls-ca") ?? serverCerts.ca),
      },
      knownCapabilities: [...new Set([...builtin, ...(flags.capability ?? [])])].sort(),
      extraAgents: flags.agent ?? [],
      agentVersions: flags["agent-version"] ?? [],
    });
    const out = one("out");
    if (out) {
      await writeFile(out, text, { mode: 0o644 });
      console.error(`wrote ${out}`);
    } else process.stdout.write(text);
    return 0;
  },
};

function parseFlags(args: string[]): Record<string, string[]> {
  const flags: Record<string, string[]> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const [key, inline] = arg.slice(2).split("=", 2) as [string, string | undefined];
    if (!valued.includes(key)) throw new UsageError(`unknown option --${key}`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new UsageError(`--${key} needs a value`);
    const list = flags[key] ?? [];
    list.push(value);
    flags[key] = list;
  }
  return flags;
}
