import { type DescField, getOption } from "@bufbuild/protobuf";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { describe, expect, it } from "vitest";
import { file_agentmesh_v1_admin } from "../../gen/agentmesh/v1/admin_pb.js";
import { file_agentmesh_v1_common } from "../../gen/agentmesh/v1/common_pb.js";
import { file_agentmesh_v1_executor } from "../../gen/agentmesh/v1/executor_pb.js";
import { file_agentmesh_v1_learning } from "../../gen/agentmesh/v1/learning_pb.js";
import { file_agentmesh_v1_planner } from "../../gen/agentmesh/v1/planner_pb.js";
import { file_agentmesh_v1_registry } from "../../gen/agentmesh/v1/registry_pb.js";
import { defineAgent } from "../../sdk/agent/define-agent.js";
import { busNames } from "../bus/bus-names.js";
import { isCapabilityName } from "../plan/capability.js";
import { checkTenantId } from "../store/tenant-repository.js";
import { isName, type NameRule, nameRules } from "./name-rules.js";

const messages = [
  file_agentmesh_v1_admin,
  file_agentmesh_v1_common,
  file_agentmesh_v1_executor,
  file_agentmesh_v1_learning,
  file_agentmesh_v1_planner,
  file_agentmesh_v1_registry,
].flatMap((f) => f.messages);

/** Which rule a field must carry, by what it names. */
function ruleFor(field: DescField): NameRule | undefined {
  const owner = field.parent.name;
  if (field.name === "tenant_id") return nameRules.tenantId;
  if (field.name === "goal_kind" || (field.name === "kind" && field.fieldKind === "scalar"))
    return nameRules.goalKind;
  if (field.name === "capability" || (owner === "Tool" && field.name === "name"))
    return nameRules.capability;
  if (owner === "AgentCard" && field.name === "name") return nameRules.agentName;
  return undefined;
}

const inRequests = (field: DescField) =>
  field.parent.name.endsWith("Request") ||
  [
    "Playbook",
    "Step",
    "SubGoal",
    "Skill",
    "Tool",
    "AgentCard",
    "DecisionContext",
    "Tenant",
  ].includes(field.parent.name);

describe("naming rules, one per name, stated in the contract", () => {
  it("every field naming a tenant, goal kind, capability or agent in a request carries its rule", () => {
    let checked = 0;
    for (const m of messages) {
      for (const field of m.fields) {
        const rule = ruleFor(field);
        if (rule === undefined || !inRequests(field)) continue;
        const declared = getOption(field, fieldRules);
        const where = `${m.typeName}.${field.name}`;
        expect(declared.type.case, where).toBe("string");
        if (declared.type.case !== "string") continue;
        expect(declared.type.value.pattern, where).toBe(rule.source);
        expect(Number(declared.type.value.maxLen), where).toBe(rule.maxLen);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(25);
  });

  it("the code that checks names outside requests uses the same rules", () => {
    // The example: the SDK accepted `Text.Upper`, RegisterAgent refused it.
    for (const bad of ["Text.Upper", "text..upper", "1text", "text.*", `a.${"b".repeat(200)}`]) {
      expect(isName(nameRules.capability, bad), bad).toBe(false);
      expect(isCapabilityName(bad), bad).toBe(false);
      expect(() => busNames("t").jobSubject(bad), bad).toThrow(/capability/);
      expect(
        () =>
          defineAgent({
            name: "x",
            version: "1",
            skills: { [bad]: { description: "d", handler: async () => 1 } },
          }),
        bad,
      ).toThrow(/capability/);
    }
    for (const good of ["text.upper", "mcp.everything.get-sum", "util.sleep_2"]) {
      expect(busNames("t").jobSubject(good)).toBe(`t.jobs.${good}`);
      expect(
        defineAgent({
          name: "x",
          version: "1",
          skills: { [good]: { description: "d", handler: async () => 1 } },
        }),
      ).toBeTruthy();
    }
    expect(() => checkTenantId("Acme")).toThrow(/tenant id/);
    expect(checkTenantId("acme-2")).toBe("acme-2");
    expect(() => defineAgent({ name: "Shout", version: "1", skills: {} })).toThrow(/agent name/);
  });
});
