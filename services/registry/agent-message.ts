/**
 * Conversions between the store's agent and tool rows and the generated
 * registry messages. Cards and tools are stored as their protobuf JSON, so a
 * round trip is lossless and the store never needs to know the schema.
 *
 * @example
 * const agent = agentToMessage(await store.agents.get(id));
 * await store.agents.putTool({ name: tool.name, agentId, spec: toolToJson(tool) });
 */
import { create, fromJson, type JsonObject, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Agent,
  type AgentCard,
  AgentCardSchema,
  AgentSchema,
  AgentState,
  type Tool,
  ToolSchema,
} from "../../gen/agentmesh/v1/registry_pb.js";
import type { AgentRecord, ToolRecord } from "../../lib/store/index.js";

/** A stored agent as the wire `Agent`. */
export function agentToMessage(record: AgentRecord): Agent {
  return create(AgentSchema, {
    agentId: record.id,
    card: fromJson(AgentCardSchema, record.card, { ignoreUnknownFields: true }),
    spiffeId: record.spiffeId,
    state: AgentState[record.state],
    registeredAt: timestampFromDate(record.registeredAt),
    leaseExpiresAt: timestampFromDate(record.leaseExpiresAt),
    lastHeartbeatAt: timestampFromDate(record.lastHeartbeatAt),
    reliability: { ...record.reliability },
    inFlight: record.inFlight,
    instanceId: record.instanceId,
    signer:
      typeof record.card[verifiedSignerKey] === "string" ? record.card[verifiedSignerKey] : "",
  });
}

/**
 * Where the stored card JSON keeps the signer the registry verified: the
 * registry's verdict beside the card, not a field of it (reading the card
 * back ignores it, ADR-015).
 */
const verifiedSignerKey = "agentmeshVerifiedSigner";

/** A registered card as the store keeps it, with the signer the registry verified ("" for none). */
export function storedCard(card: AgentCard, verifiedSigner: string): JsonObject {
  const json = cardToJson(card);
  if (verifiedSigner !== "") json[verifiedSignerKey] = verifiedSigner;
  return json;
}

/** A card as the JSON the store keeps. */
export function cardToJson(card: AgentCard): JsonObject {
  return toJson(AgentCardSchema, card) as JsonObject;
}

/** A tool as the JSON the store keeps. */
export function toolToJson(tool: Tool): JsonObject {
  return toJson(ToolSchema, tool) as JsonObject;
}

/** A stored tool as the wire `Tool` (the row's owner wins over the JSON's). */
export function toolToMessage(record: ToolRecord): Tool {
  const tool = fromJson(ToolSchema, record.spec, { ignoreUnknownFields: true });
  tool.agentId = record.agentId ?? "";
  return tool;
}
