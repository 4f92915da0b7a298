import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AgentState } from "../../gen/agentmesh/v1/registry_pb.js";
import { type Command, UsageError } from "../command.js";
import { flags, meshFromEnv, reporting, table } from "./gateway-client.js";

const usage = `agentmesh agents ls [--capability C] [--all]   (AGENTMESH_URL, AGENTMESH_API_KEY)

  ls    agents by name and version with their state, capabilities, reliability,
        jobs in flight, heartbeat age and id (--all includes expired and
        deregistered agents; --capability C only those offering C)`;

/** "3s ago", "4m ago", "2h ago". */
function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** `agentmesh agents ls`: the registry's agents through the gateway. */
export const agents: Command = {
  name: "agents",
  summary: "list agents (name, version, capabilities, liveness, reliability) through the gateway",
  usage,
  run: (args) =>
    reporting(async () => {
      const [sub, ...rest] = args;
      if (sub !== "ls")
        throw new UsageError(
          sub ? `unknown sub-command ${JSON.stringify(sub)}` : "missing sub-command",
        );
      const { values } = flags(rest, { capability: { type: "string" }, all: { type: "boolean" } });
      const { agents: list } = await (await meshFromEnv()).registry.listAgents({
        capability: values.capability ?? "",
        includeInactive: values.all === true,
      });
      const now = Date.now();
      table(
        ["NAME", "VERSION", "STATE", "CAPABILITIES", "RELIABILITY", "IN FLIGHT", "HEARTBEAT", "ID"],
        list.map((a) => [
          a.card?.name ?? "",
          a.card?.version ?? "",
          (AgentState[a.state] ?? "").toLowerCase(),
          (a.card?.skills ?? []).map((s) => s.capability).join(","),
          Object.values(a.reliability).length
            ? Math.min(...Object.values(a.reliability)).toFixed(2)
            : "-",
          String(a.inFlight),
          a.lastHeartbeatAt ? age(now - timestampDate(a.lastHeartbeatAt).getTime()) : "",
          a.agentId,
        ]),
      );
      return 0;
    }),
};
