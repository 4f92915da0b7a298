import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { file_agentmesh_v1_admin } from "../../gen/agentmesh/v1/admin_pb.js";
import { file_agentmesh_v1_common } from "../../gen/agentmesh/v1/common_pb.js";
import {
  file_agentmesh_v1_executor,
  SubmitGoalRequestSchema,
} from "../../gen/agentmesh/v1/executor_pb.js";
import { file_agentmesh_v1_jobs } from "../../gen/agentmesh/v1/jobs_pb.js";
import { file_agentmesh_v1_learning } from "../../gen/agentmesh/v1/learning_pb.js";
import { file_agentmesh_v1_planner } from "../../gen/agentmesh/v1/planner_pb.js";
import { file_agentmesh_v1_registry } from "../../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { isConstrained, ruleExamples, validExample } from "../testing/contract-examples.js";
import { checkMessage, messageViolations } from "./validate-message.js";

const messages = [
  file_agentmesh_v1_admin,
  file_agentmesh_v1_common,
  file_agentmesh_v1_executor,
  file_agentmesh_v1_jobs,
  file_agentmesh_v1_learning,
  file_agentmesh_v1_planner,
  file_agentmesh_v1_registry,
].flatMap((f) => f.messages);

describe("the contract's validation rules", () => {
  const constrained = messages.filter((m) => m.fields.some(isConstrained));

  it("are declared on the messages that carry names, sizes and required fields", () => {
    expect(constrained.length).toBeGreaterThan(30);
  });

  it("accept a message keeping every rule", () => {
    for (const schema of constrained) {
      expect(messageViolations(schema, validExample(schema)), schema.typeName).toEqual([]);
    }
  });

  it("refuse a failing example of each rule with INVALID_ARGUMENT naming the field", () => {
    const examples = constrained.flatMap(ruleExamples);
    expect(examples.length).toBeGreaterThan(60);
    for (const { schema, field, rule, message } of examples) {
      const where = `${schema.typeName}.${field.name} ${rule}`;
      let error: unknown;
      try {
        checkMessage(schema, message);
      } catch (err) {
        error = err;
      }
      expect(error, where).toBeInstanceOf(MeshError);
      const e = error as MeshError;
      expect(e.code, where).toBe(Code.InvalidArgument);
      expect(e.message, where).toContain(`${field.name}: `);
      expect(e.details.violations, where).toEqual([
        expect.objectContaining({ path: field.name, rule }),
      ]);
    }
  });

  it("names every violated field, nested ones by their full path", () => {
    const bad = create(SubmitGoalRequestSchema, { tenantId: "Acme", kind: "Text.Upper" });
    expect(() => checkMessage(SubmitGoalRequestSchema, bad)).toThrow(
      /invalid agentmesh\.v1\.SubmitGoalRequest: tenant_id: .*; kind: /,
    );
  });
});
