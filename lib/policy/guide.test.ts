/**
 * The authoring guide's extension examples are the tested files in
 * policies/examples/ (comment lines aside), so the guide cannot drift from
 * what `opa test policies/` proves.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { packagePath } from "../config/package-root.js";

const withoutComments = (rego: string) =>
  rego
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("\n")
    .trim();

describe("policies/README.md", () => {
  it("shows each example extension exactly as policies/examples/ has it", async () => {
    const guide = await readFile(packagePath("policies", "README.md"), "utf8");
    const blocks = [...guide.matchAll(/```rego\n# policies\/ext\/(\w+)\.rego\n([\s\S]*?)```/g)];
    expect(blocks.map((b) => b[1])).toEqual([
      "no_shell_for_acme",
      "no_summaries_for_one_key",
      "payments_approvers",
    ]);
    for (const [, name, body] of blocks) {
      const file = await readFile(
        join(packagePath("policies", "examples"), `${name}.rego`),
        "utf8",
      );
      expect(withoutComments(body!), name).toBe(withoutComments(file));
    }
  });
});
