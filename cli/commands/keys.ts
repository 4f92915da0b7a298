import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Command, UsageError } from "../command.js";
import { flags, meshFromEnv, reporting, table } from "./gateway-client.js";

const usage = `agentmesh keys <create|ls|revoke> --tenant T [options]   (AGENTMESH_URL, AGENTMESH_API_KEY)

  create --tenant T [--roles goals.write,goals.read] [--name NAME] [--expires-in 30d|12h]
                       prints the secret once: store it now, it cannot be shown again
  ls --tenant T
  revoke --tenant T KEY_ID`;

/** `agentmesh keys`: a tenant's API keys through the gateway. */
export const keys: Command = {
  name: "keys",
  summary: "create, list and revoke a tenant's API keys through the gateway",
  usage,
  run: (args) =>
    reporting(async () => {
      const [sub, ...rest] = args;
      const { values, positionals } = flags(rest, {
        tenant: { type: "string" },
        roles: { type: "string" },
        name: { type: "string" },
        "expires-in": { type: "string" },
      });
      const tenantId = values.tenant;
      if (!tenantId) throw new UsageError("--tenant is required");
      const mesh = await meshFromEnv();
      switch (sub) {
        case "create": {
          const expiresIn = values["expires-in"];
          const res = await mesh.admin.createApiKey({
            tenantId,
            name: values.name ?? "cli",
            roles: (values.roles ?? "goals.write")
              .split(",")
              .map((r) => r.trim())
              .filter(Boolean),
            ...(expiresIn ? { expiresAt: timestampFromMs(Date.now() + duration(expiresIn)) } : {}),
          });
          console.error(
            `created key ${res.key?.keyId} for ${tenantId} (${res.key?.roles.join(", ")}); the secret follows, shown once:`,
          );
          console.log(res.secret);
          return 0;
        }
        case "ls": {
          const { keys: list } = await mesh.admin.listApiKeys({ tenantId });
          table(
            ["KEY", "NAME", "ROLES", "EXPIRES", "REVOKED"],
            list.map((k) => [
              k.keyId,
              k.name,
              k.roles.join(","),
              k.expiresAt ? timestampDate(k.expiresAt).toISOString() : "never",
              k.revokedAt ? timestampDate(k.revokedAt).toISOString() : "",
            ]),
          );
          return 0;
        }
        case "revoke": {
          const keyId = positionals[0];
          if (!keyId) throw new UsageError("revoke needs a key id");
          await mesh.admin.revokeApiKey({ tenantId, keyId });
          console.log(`revoked key ${keyId}`);
          return 0;
        }
        default:
          throw new UsageError(
            sub ? `unknown sub-command ${JSON.stringify(sub)}` : "missing sub-command",
          );
      }
    }),
};

function duration(text: string): number {
  const m = /^(\d+)([smhd])$/.exec(text);
  if (!m)
    throw new UsageError(`--expires-in: expected e.g. 30d, 12h, 90m; got ${JSON.stringify(text)}`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"];
  return Number(m[1]) * unit;
}
