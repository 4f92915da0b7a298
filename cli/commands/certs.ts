import { loadConfig } from "../../lib/config/config.js";
import { isValidName } from "../../lib/identity/spiffe.js";
import { readCertificateSet } from "../../lib/tls/cert-watcher.js";
import { certPaths, ensureIdentities, initCa, issueCertificate } from "../../lib/tls/dev-ca.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh certs <init|issue|ensure|show> [options]

  init [--force]                    create the dev CA under <dir>/ca (kept if it exists)
  issue <name> [--ttl 24h] [--dns host]...
                                    issue a leaf for a service account (registry, planner,
                                    executor, learning, gateway, cli, agent-<name>)
  ensure [name...]                  create or renew (near expiry) the named identities;
                                    default: every mesh component and cli
  show <name>                       print the SPIFFE ID, serial and expiry of <dir>/<name>

options:
  --dir <path>            certificate folder (default $AGENTMESH_CERT_DIR or .agentmesh/certs)
  --trust-domain <td>     SPIFFE trust domain (default $AGENTMESH_TRUST_DOMAIN or agentmesh.local)
  --namespace <ns>        SPIFFE namespace (default $AGENTMESH_NAMESPACE or agentmesh)

Files follow cert-manager's layout: <dir>/<name>/{tls.crt,tls.key,ca.crt}; keys are 0600.`;

const defaultNames = ["registry", "planner", "executor", "learning", "gateway", "cli"];

/** `agentmesh certs`: the dev CA and identities, in pure Node. */
export const certs: Command = {
  name: "certs",
  summary: "dev CA and SPIFFE certificates (init, issue, ensure, show)",
  usage,
  async run(args) {
    const { positional, flags } = parse(args);
    const config = loadConfig();
    const certDir = flags.dir?.[0] ?? config.certDir;
    const trustDomain = flags["trust-domain"]?.[0] ?? config.trustDomain;
    const namespace = flags.namespace?.[0] ?? config.namespace;
    const [sub, ...rest] = positional;
    switch (sub) {
      case "init": {
        const ca = await initCa({ certDir, trustDomain, force: Boolean(flags.force) });
        console.log(
          `${ca.created ? "created" : "kept existing"} CA ${ca.paths.cert} (serial ${ca.serial}, valid until ${ca.notAfter.toISOString()})`,
        );
        return 0;
      }
      case "issue": {
        const name = rest[0];
        if (!name || rest.length > 1) throw new UsageError("issue takes exactly one name");
        if (!isValidName(name)) throw new UsageError(`invalid name ${JSON.stringify(name)}`);
        const issued = await issueCertificate({
          certDir,
          name,
          trustDomain,
          namespace,
          ttlMs: flags.ttl ? parseDuration(flags.ttl[0] as string) : undefined,
          dnsNames: flags.dns ?? [],
        });
        console.log(
          `issued ${issued.spiffeId} → ${issued.paths.dir} (serial ${issued.serial}, valid until ${issued.notAfter.toISOString()})`,
        );
        return 0;
      }
      case "ensure": {
        const names = rest.length > 0 ? rest : defaultNames;
        const bad = names.find((n) => !isValidName(n));
        if (bad) throw new UsageError(`invalid name ${JSON.stringify(bad)}`);
        const out = await ensureIdentities({ certDir, names, trustDomain, namespace });
        for (const i of out) {
          console.log(
            `${i.issued ? `issued (${i.issued})` : "current"}  ${i.spiffeId}  until ${i.notAfter.toISOString()}`,
          );
        }
        return 0;
      }
      case "show": {
        const name = rest[0];
        if (!name) throw new UsageError("show takes a name");
        const set = await readCertificateSet(certPaths(certDir, name).dir);
        console.log(
          JSON.stringify(
            { name, spiffeId: set.spiffeId, serial: set.serial, notAfter: set.notAfter },
            null,
            2,
          ),
        );
        return 0;
      }
      default:
        throw new UsageError(
          sub ? `unknown sub-command ${JSON.stringify(sub)}` : "missing sub-command",
        );
    }
  },
};

function parse(args: string[]): { positional: string[]; flags: Record<string, string[]> } {
  const positional: string[] = [];
  const flags: Record<string, string[]> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const [key, inline] = arg.slice(2).split("=", 2) as [string, string | undefined];
    if (key === "force") {
      flags.force = ["true"];
      continue;
    }
    if (!["dir", "trust-domain", "namespace", "ttl", "dns"].includes(key))
      throw new UsageError(`unknown option --${key}`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new UsageError(`--${key} needs a value`);
    const list = flags[key] ?? [];
    list.push(value);
    flags[key] = list;
  }
  return { positional, flags };
}

/** `90s`, `30m`, `24h`, `7d` or milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m)
    throw new UsageError(`invalid duration ${JSON.stringify(text)}: use e.g. 90s, 30m, 24h, 7d`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? "ms") as "ms"];
  const ms = n * unit;
  if (ms < 60_000) throw new UsageError("a certificate must live at least one minute");
  return ms;
}
