/**
 * The mesh's A2A agent card (protocol v1.0): one JSON-RPC interface at
 * `/a2a`, streaming, the two ways to authenticate (an API key in `x-api-key`,
 * or `Authorization: Bearer` with an API key or a JWT), and one skill per
 * goal kind the caller's tenant can run. A2A skills carry no input schema, so
 * the goal kinds' JSON Schemas travel in the card's extension
 * `inputSchemasExtension` (`params`: skill id → schema).
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { Playbook } from "../../gen/agentmesh/v1/planner_pb.js";

/** The extension whose params give each skill's input JSON Schema. */
export const inputSchemasExtension = "urn:agentmesh:a2a:goal-input-schemas:v1";

/** Path of the JSON-RPC endpoint. */
export const a2aPath = "/a2a";

/** The card; without playbooks (an anonymous caller) the skills are empty and the extended card has them. */
export function agentCard(baseUrl: string, playbooks: readonly Playbook[] | undefined): JsonObject {
  const skills = (playbooks ?? []).map((p) => ({
    id: p.goalKind,
    name: p.goalKind,
    description: p.description || `goals of kind ${p.goalKind}`,
    tags: [p.tenantId ? "tenant" : "global", "goal"],
    inputModes: ["application/json"],
    outputModes: ["application/json"],
  }));
  const schemas: JsonObject = {};
  for (const p of playbooks ?? []) schemas[p.goalKind] = p.inputSchema ?? { type: "object" };
  return {
    name: "agentmesh",
    description:
      "An agent-orchestration mesh: each skill is a goal kind; a message with a data part (the goal input) " +
      "and `metadata.skill` (the goal kind) runs one goal as a task. Skills appear once authenticated.",
    supportedInterfaces: [
      { url: `${baseUrl}${a2aPath}`, protocolBinding: "JSONRPC", protocolVersion: "1.0" },
    ],
    version: "1.0.0",
    capabilities: {
      streaming: true,
      pushNotifications: false,
      extendedAgentCard: true,
      extensions: [
        {
          uri: inputSchemasExtension,
          description: "JSON Schema of each skill's input (the data part of the message)",
          required: false,
          params: schemas,
        },
      ],
    },
    securitySchemes: {
      apiKey: {
        apiKeySecurityScheme: {
          description: "an agentmesh API key",
          location: "header",
          name: "x-api-key",
        },
      },
      bearer: {
        httpAuthSecurityScheme: {
          description: "an agentmesh API key or a JWT of the configured issuer",
          scheme: "Bearer",
          bearerFormat: "JWT",
        },
      },
    },
    securityRequirements: [
      { schemes: { apiKey: { list: [] } } },
      { schemes: { bearer: { list: [] } } },
    ],
    defaultInputModes: ["application/json"],
    defaultOutputModes: ["application/json"],
    skills,
  };
}
