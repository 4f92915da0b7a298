import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Command, UsageError } from "../command.js";
import { flags, meshFromEnv, reporting, table } from "./gateway-client.js";

const usage = `agentmesh tenants <create|ls> [options]   (AGENTMESH_URL, AGENTMESH_API_KEY: a platform admin)

  create TENANT_ID [--name "Display Name"] [--rate REQ_PER_S] [--streams N]
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
        });
        const tenantId = positionals[0];
        if (!tenantId) throw new UsageError("create needs a tenant id");
        const { tenant } = await mesh.admin.createTenant({
          tenant: {
            tenantId,
            displayName: values.name ?? tenantId,
            rateLimitPerSecond: values.rate ? Number(values.rate) : 0,
            maxConcurrentStreams: values.streams ? Number.parseInt(values.streams, 10) : 0,
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
