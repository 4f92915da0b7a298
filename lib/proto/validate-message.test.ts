import { create, type DescField, type DescMessage, getOption } from "@bufbuild/protobuf";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
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
import { checkMessage, messageViolations } from "./validate-message.js";

const files = [
  file_agentmesh_v1_admin,
  file_agentmesh_v1_common,
  file_agentmesh_v1_executor,
  file_agentmesh_v1_jobs,
  file_agentmesh_v1_learning,
  file_agentmesh_v1_planner,
  file_agentmesh_v1_registry,
];

/** Every field of the contract that declares `buf.validate` rules. */
function constrainedFields(): DescField[] {
  return files
    .flatMap((f) => f.messages.flatMap((m) => m.fields))
    .filter((f) => {
      const rules = getOption(f, fieldRules);
      return rules.required || rules.type.case !== undefined;
    });
}

/** For each rule of `field`, a value that breaks it and nothing else: [rule id, value]. */
function failingValues(field: DescField): [string, unknown][] {
  const rules = getOption(field, fieldRules);
  const out: [string, unknown][] = [];
  if (rules.required) out.push(["required", undefined]);
  const t = rules.type;
  switch (t.case) {
    case "string": {
      const r = t.value;
      if (r.pattern) out.push(["string.pattern", "Not A Name!"]);
      if (r.maxLen > 0n) out.push(["string.max_len", "a".repeat(Number(r.maxLen) + 1)]);
      if (r.minLen > 0n) out.push(["string.min_len", ""]);
      break;
    }
    case "repeated":
      out.push([
        "repeated.max_items",
        Array(Number(t.value.maxItems) + 1).fill(defaultItem(field)),
      ]);
      break;
    case "map":
      out.push([
        "map.max_pairs",
        Object.fromEntries(
          Array.from({ length: Number(t.value.maxPairs) + 1 }, (_, i) => [`k${i}`, "v"]),
        ),
      ]);
      break;
    case "uint32":
      if (t.value.lessThan.case === "lte") out.push(["uint32.lte", t.value.lessThan.value + 1]);
      break;
    case undefined:
      break;
    default:
      throw new Error(`${field.parent.typeName}.${field.name}: no failing example for ${t.case}`);
  }
  return out;
}

function defaultItem(field: DescField): unknown {
  if (field.fieldKind !== "list") return undefined;
  if (field.listKind === "enum") return 1;
  if (field.listKind === "scalar") return "x";
  return validOf(field.message);
}

/** A valid message: each constrained field given a value that keeps its rules. */
function validMessage(schema: DescMessage): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of schema.fields) {
    const rules = getOption(f, fieldRules);
    if (rules.required && f.fieldKind === "message") out[f.localName] = validOf(f.message);
    if (rules.type.case === "string" && (rules.type.value.pattern || rules.type.value.minLen > 0n))
      out[f.localName] = rules.type.value.pattern.includes("0-9-]{0,6") ? "acme" : "ab";
  }
  return out;
}

function validOf(schema: DescMessage): unknown {
  return create(schema, validMessage(schema) as never);
}

describe("the contract's validation rules", () => {
  const fields = constrainedFields();

  it("declares rules on the fields that name things", () => {
    expect(fields.length).toBeGreaterThan(60);
  });

  it("accepts a message keeping every rule", () => {
    for (const schema of new Set(fields.map((f) => f.parent))) {
      const message = create(schema, validMessage(schema) as never);
      expect(messageViolations(schema, message), schema.typeName).toEqual([]);
    }
  });

  it("refuses a failing example of each rule with INVALID_ARGUMENT naming the field", () => {
    let checked = 0;
    for (const field of fields) {
      for (const [rule, value] of failingValues(field)) {
        const init = validMessage(field.parent);
        if (value === undefined) delete init[field.localName];
        else init[field.localName] = value;
        const message = create(field.parent, init as never);
        const where = `${field.parent.typeName}.${field.name} ${rule}`;
        let error: unknown;
        try {
          checkMessage(field.parent, message);
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
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(60);
  });

  it("names the nested field's full path", () => {
    const bad = create(SubmitGoalRequestSchema, { tenantId: "Acme", kind: "Text.Upper" });
    expect(() => checkMessage(SubmitGoalRequestSchema, bad)).toThrow(
      /invalid agentmesh\.v1\.SubmitGoalRequest: tenant_id: .*; kind: /,
    );
  });
});
