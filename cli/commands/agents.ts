import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AgentState } from "../../gen/agentmesh/v1/registry_pb.js";
import { type Command, UsageError } from "../command.js";
import { flags, meshFromEnv, reporting, table } from "./gateway-client.js";

const usage = `agentmesh agents ls [--capability C] [--all]   (AGENTMESH_URL, AGENTMESH_API_KEY)

  ls    agents with their state, capabilities, reliability and last heartbeat
        (--all includes expired and deregistered agents)`;

/** `agentmesh agents ls`: the registry's agents through the gateway. */
export const agents: Command = {
  name: "agents",
  summary: "list agents with liveness and reliability through the gateway",
  usage,
  run: (args) =>
    reporting(async () => {
      const [sub, ...rest] = args;
      if (sub !== "ls")
        throw new UsageError(
          sub ? `unknown sub-command ${JSON.stringify(sub)}` : "missing sub-command",
        );
      const { values } = flags(rest, { capability: { type: "string" }, all: { type: "boolean" } });
      const { agents: list } = await meshFromEnv().registry.listAgents({
        capability: values.capability ?? "",
        includeInactive: values.all === true,
      });
      table(
        ["AGENT", "STATE", "CAPABILITIES", "RELIABILITY", "IN FLIGHT", "HEARTBEAT"],
        list.map((a) => [
          a.agentId,
          (AgentState[a.state] ?? "").toLowerCase(),
          (a.card?.skills ?? []).map((s) => s.capability).join(","),
          Object.values(a.reliability).length
            ? Math.min(...Object.values(a.reliability)).toFixed(2)
            : "-",
          String(a.inFlight),
          a.lastHeartbeatAt ? timestampDate(a.lastHeartbeatAt).toISOString() : "",
        ]),
      );
      return 0;
    }),
};
