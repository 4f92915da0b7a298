import { clone, create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { StepSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import { cloneMessage } from "./clone-message.js";
import { allMessages, randomMessage, rng } from "./testing.js";

/** Every object (message, list, map, JSON, bytes) reachable from a value. */
function objects(v: unknown, into = new Set<object>()): Set<object> {
  if (typeof v === "object" && v !== null && !into.has(v)) {
    into.add(v);
    if (!(v instanceof Uint8Array)) for (const x of Object.values(v)) objects(x, into);
  }
  return into;
}

describe("cloneMessage", () => {
  it("gives clone's copy of random messages of every type, sharing nothing with the original", () => {
    const r = rng(11);
    for (const desc of allMessages()) {
      for (let i = 0; i < 30; i++) {
        const message = randomMessage(r, desc) as never;
        let expected: unknown;
        try {
          expected = clone(desc, message);
        } catch {
          continue; // clone checks map keys are valid UTF-8 (a lone surrogate); the copy does not
        }
        const copy = cloneMessage(desc, message);
        expect(copy, `${desc.typeName} #${i}`).toEqual(expected);
        const original = objects(message);
        for (const o of objects(copy)) expect(original.has(o)).toBe(false);
      }
    }
  });

  it("copies a playbook step so changing the copy leaves the template as it was", () => {
    const template = create(StepSchema, {
      stepId: "s",
      capability: "util.echo",
      dependsOn: ["a"],
      input: { text: "hello", nested: { list: [1, "x"] } },
    });
    const copy = cloneMessage(StepSchema, template);
    copy.dependsOn.push("b");
    (copy.input!.nested as { list: unknown[] }).list.push(2);
    expect(template.dependsOn).toEqual(["a"]);
    expect(template.input).toEqual({ text: "hello", nested: { list: [1, "x"] } });
  });
});
