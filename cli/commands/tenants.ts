import { userInfo } from "node:os";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { TenantSchema, TenantUsageSchema } from "../../gen/agentmesh/v1/admin_pb.js";
import { settings } from "../../lib/config/settings.js";
import { processSecrets } from "../../lib/secrets/open-secrets.js";
import { type EncryptionMode, encryptionModes } from "../../lib/store/payload-cipher.js";
import { setTenantRetention } from "../../lib/store/retention.js";
import { openStore } from "../../lib/store/store.js";
import { eraseTenant, rotateTenantKeys, setTenantEncryption } from "../../lib/store/tenant-keys.js";
import { type Command, UsageError } from "../command.js";
import { flags, meshFromEnv, reporting, table } from "./gateway-client.js";

const usage = `agentmesh tenants <create|ls|get|update|suspend|resume|usage> [options]
  (AGENTMESH_URL, AGENTMESH_API_KEY: a platform admin)

  create TENANT_ID [--name "Display Name"] [--rate REQ_PER_S] [--streams N]
         [--max-request-bytes N] [--max-depth N] [--max-list-length N] [--max-values N]
         (what one request may cost at the gateway; unset: the gateway's defaults)
  ls
  get TENANT_ID                 (limits, step quotas, feature flags, suspension; JSON)
  update TENANT_ID [--name NAME] [--rate REQ_PER_S] [--streams N] [--goals N]
         [--max-input-bytes N] [--quota CAPABILITY=PER_MINUTE]... (0 removes it)
         [--selector NAME|""] [--llm-planner on|off] [--canary on|off]
         (0 for a limit means the default; every change is audited)
  suspend TENANT_ID [--reason TEXT]   (its calls get FAILED_PRECONDITION "tenant suspended")
  resume TENANT_ID
  usage TENANT_ID               (goals by status, in flight, requests admitted and refused)

agentmesh tenants <encryption|rotate-keys|erase|retention> TENANT_ID [--schema S]
  (an operator with the database, DATABASE_URL, and the secrets, AGENTMESH_SECRETS_PROVIDER)

  encryption TENANT_ID off|sensitive|all   what is encrypted at rest from now on: nothing,
                                           the contract's sensitive fields, or every payload
  rotate-keys TENANT_ID                    re-wrap the tenant's data keys under the newest
                                           key-encryption key and start a new data key
  erase TENANT_ID                          destroy the tenant's data keys (crypto-shredding):
                                           no payload sealed with them can be read again
  retention TENANT_ID DAYS|off [--region REGION|any]
                                           keep finished goals, their plans, events and
                                           experiences DAYS days (purged hourly; the audit
                                           log is kept); pin the tenant's data to a region
                                           (AGENTMESH_REGION elsewhere refuses it)`;

/** Sub-commands run against the database and the secrets, not the gateway. */
const operatorSubs = new Set(["encryption", "rotate-keys", "erase", "retention"]);

async function operator(sub: string, rest: string[]): Promise<number> {
  const { values, positionals } = flags(rest, {
    schema: { type: "string" },
    region: { type: "string" },
  });
  const [tenantId, mode] = positionals;
  if (!tenantId) throw new UsageError(`${sub} needs a tenant id`);
  if (sub === "encryption" && !encryptionModes.includes(mode as EncryptionMode)) {
    throw new UsageError("encryption needs off, sensitive or all");
  }
  const actor = `operator/${userInfo().username}`;
  const secrets = await processSecrets();
  const schema = values.schema ?? settings.dbSchema.read();
  const store = await openStore({ secrets, ...(schema ? { schema } : {}) });
  try {
    if (sub === "retention") {
      if (mode === undefined || (mode !== "off" && !/^\d+$/.test(mode))) {
        throw new UsageError("retention needs a number of days or off");
      }
      const days = mode === "off" ? null : Number(mode);
      const region =
        values.region === undefined ? undefined : values.region === "any" ? null : values.region;
      await setTenantRetention(
        store,
        tenantId,
        { days, ...(region !== undefined ? { region } : {}) },
        actor,
      );
      console.log(
        JSON.stringify({ tenant: tenantId, retentionDays: days, region: region ?? null }),
      );
    } else if (sub === "encryption") {
      await setTenantEncryption(store, tenantId, mode as EncryptionMode, actor);
      console.log(JSON.stringify({ tenant: tenantId, encryption: mode }));
    } else if (sub === "rotate-keys") {
      const dataKeyVersion = await rotateTenantKeys(store, tenantId, actor);
      console.log(JSON.stringify({ tenant: tenantId, dataKeyVersion }));
    } else {
      const plaintextGoals = await store.tenants.countPlaintextGoals(tenantId);
      const dataKeysDestroyed = await eraseTenant(store, tenantId, actor);
      console.log(JSON.stringify({ tenant: tenantId, dataKeysDestroyed, plaintextGoals }));
      if (plaintextGoals > 0) {
        console.error(
          `warning: ${plaintextGoals} goals of ${tenantId} were stored before encryption was on: erasure cannot make them unreadable`,
        );
      }
    }
    return 0;
  } finally {
    await store.close();
    await secrets.close();
  }
}

/** `agentmesh tenants`: create and list tenants through the gateway (platform admins). */
export const tenants: Command = {
  name: "tenants",
  summary:
    "create, list, change, suspend and resume tenants; their usage; encrypt, rotate keys of and erase their data",
  usage,
  run: (args) =>
    reporting(async () => {
      const [sub, ...rest] = args;
      if (sub && operatorSubs.has(sub)) return operator(sub, rest);
      const mesh = await meshFromEnv();
      if (sub === "create") {
        const { values, positionals } = flags(rest, {
          name: { type: "string" },
          rate: { type: "string" },
          streams: { type: "string" },
          "max-request-bytes": { type: "string" },
          "max-depth": { type: "string" },
          "max-list-length": { type: "string" },
          "max-values": { type: "string" },
        });
        const count = (flag: keyof typeof values) => {
          const raw = values[flag];
          if (raw === undefined) return 0;
          const n = Number(raw);
          if (!Number.isInteger(n) || n <= 0 || n > 0xffffffff) {
            throw new UsageError(`--${flag} must be a positive integer`);
          }
          return n;
        };
        const tenantId = positionals[0];
        if (!tenantId) throw new UsageError("create needs a tenant id");
        const { tenant } = await mesh.admin.createTenant({
          tenant: {
            tenantId,
            displayName: values.name ?? tenantId,
            rateLimitPerSecond: values.rate ? Number(values.rate) : 0,
            maxConcurrentStreams: values.streams ? Number.parseInt(values.streams, 10) : 0,
            requestLimits: {
              maxRequestBytes: count("max-request-bytes"),
              maxRequestDepth: count("max-depth"),
              maxListLength: count("max-list-length"),
              maxRequestValues: count("max-values"),
            },
          },
        });
        console.log(`created tenant ${tenant?.tenantId}`);
        return 0;
      }
      if (sub === "get") {
        const { tenant } = await mesh.admin.getTenant({ tenantId: tenantArg(rest) });
        console.log(JSON.stringify(tenant ? toJson(TenantSchema, tenant) : {}, null, 2));
        return 0;
      }
      if (sub === "update") {
        const { values, positionals } = flags(rest, {
          name: { type: "string" },
          rate: { type: "string" },
          streams: { type: "string" },
          goals: { type: "string" },
          "max-input-bytes": { type: "string" },
          quota: { type: "string", multiple: true },
          selector: { type: "string" },
          "llm-planner": { type: "string" },
          canary: { type: "string" },
        });
        const tenantId = tenantArg(positionals);
        const whole = (flag: string, raw: string | undefined) => {
          if (raw === undefined) return undefined;
          const n = Number(raw);
          if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
            throw new UsageError(`--${flag} must be an integer ≥ 0`);
          }
          return n;
        };
        const onOff = (flag: string, raw: string | undefined) => {
          if (raw === undefined) return undefined;
          if (raw !== "on" && raw !== "off") throw new UsageError(`--${flag} is on or off`);
          return raw === "on";
        };
        const stepQuotas: Record<string, number> = {};
        for (const q of values.quota ?? []) {
          const eq = q.lastIndexOf("=");
          const perMinute = whole("quota", eq > 0 ? q.slice(eq + 1) : undefined);
          if (eq <= 0 || perMinute === undefined) {
            throw new UsageError("--quota is CAPABILITY=PER_MINUTE, e.g. text.upper=60");
          }
          stepQuotas[q.slice(0, eq)] = perMinute;
        }
        let rate: number | undefined;
        if (values.rate !== undefined) {
          rate = Number(values.rate);
          if (!Number.isFinite(rate) || rate < 0) throw new UsageError("--rate must be ≥ 0");
        }
        const { tenant } = await mesh.admin.updateTenant({
          tenantId,
          ...(values.name !== undefined ? { displayName: values.name } : {}),
          ...(rate !== undefined ? { rateLimitPerSecond: rate } : {}),
          ...optional("maxConcurrentStreams", whole("streams", values.streams)),
          ...optional("maxConcurrentGoals", whole("goals", values.goals)),
          ...optional("maxGoalInputBytes", whole("max-input-bytes", values["max-input-bytes"])),
          stepQuotas,
          ...(values.selector !== undefined ? { learningSelector: values.selector } : {}),
          ...optional("llmPlanner", onOff("llm-planner", values["llm-planner"])),
          ...optional("canary", onOff("canary", values.canary)),
        });
        console.log(JSON.stringify(tenant ? toJson(TenantSchema, tenant) : {}, null, 2));
        return 0;
      }
      if (sub === "suspend") {
        const { values, positionals } = flags(rest, { reason: { type: "string" } });
        const tenantId = tenantArg(positionals);
        await mesh.admin.suspendTenant({ tenantId, reason: values.reason ?? "" });
        console.log(`suspended tenant ${tenantId}`);
        return 0;
      }
      if (sub === "resume") {
        const tenantId = tenantArg(rest);
        await mesh.admin.resumeTenant({ tenantId });
        console.log(`resumed tenant ${tenantId}`);
        return 0;
      }
      if (sub === "usage") {
        const { usage: u } = await mesh.admin.getTenantUsage({ tenantId: tenantArg(rest) });
        console.log(JSON.stringify(u ? toJson(TenantUsageSchema, u) : {}, null, 2));
        return 0;
      }
      if (sub === "ls") {
        const { tenants: list } = await mesh.admin.listTenants({});
        table(
          ["TENANT", "NAME", "RATE/S", "STREAMS", "GOALS", "STATE", "CREATED"],
          list.map((t) => [
            t.tenantId,
            t.displayName,
            t.rateLimitPerSecond ? String(t.rateLimitPerSecond) : "default",
            t.maxConcurrentStreams ? String(t.maxConcurrentStreams) : "default",
            t.maxConcurrentGoals ? String(t.maxConcurrentGoals) : "unlimited",
            t.suspendedAt ? "suspended" : "active",
            t.createdAt ? timestampDate(t.createdAt).toISOString() : "",
          ]),
        );
        return 0;
      }
      throw new UsageError(
        sub ? `unknown sub-command ${JSON.stringify(sub)}` : "missing sub-command",
      );
    }),
};

function tenantArg(args: readonly string[]): string {
  const id = args.find((a) => !a.startsWith("-"));
  if (!id) throw new UsageError("needs a tenant id");
  return id;
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}
