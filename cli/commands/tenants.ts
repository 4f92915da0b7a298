import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Command, UsageError } from "../command.js";
import { flags, meshFromEnv, reporting, table } from "./gateway-client.js";

const usage = `agentmesh tenants <create|ls> [options]   (AGENTMESH_URL, AGENTMESH_API_KEY: a platform admin)

  create TENANT_ID [--name "Display Name"] [--rate REQ_PER_S] [--streams N]
         [--max-request-bytes N] [--max-depth N] [--max-list-length N] [--max-values N]
         (what one request may cost at the gateway; unset: the gateway's defaults)
  ls`;

/** `agentmesh tenants`: create and list tenants through the gateway (platform admins). */
export const tenants: Command = {
  name: "tenants",
  summary: "create and list tenants through the gateway",
  usage,
  run: (args) =>
    reporting(async () => {
      const [sub, ...rest] = args;
      const mesh = meshFromEnv();
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
      if (sub === "ls") {
        const { tenants: list } = await mesh.admin.listTenants({});
        table(
          ["TENANT", "NAME", "RATE/S", "STREAMS", "CREATED"],
          list.map((t) => [
            t.tenantId,
            t.displayName,
            t.rateLimitPerSecond ? String(t.rateLimitPerSecond) : "default",
            t.maxConcurrentStreams ? String(t.maxConcurrentStreams) : "default",
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
