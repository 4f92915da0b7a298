/**
 * The built-in tool catalog: generated from the built-in agents' definitions
 * and playbook files, equal to the committed `docs/catalog/` (regenerate with
 * `node bin/agentmesh.js catalog`), and saying what a user looks up in it.
 */
import { readFile } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PlaybookSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import {
  buildCatalog,
  catalogJson,
  renderCatalogMarkdown,
} from "../../lib/catalog/tool-catalog.js";
import { packagePath } from "../../lib/config/package-root.js";
import { defineAgent } from "../../sdk/agent/define-agent.js";
import { builtinCatalog } from "./catalog.js";

describe("agentmesh catalog", () => {
  it("matches the committed catalog of the built-in agents and goal kinds", async () => {
    const catalog = await builtinCatalog();
    const committed = (name: string) => readFile(packagePath("docs", "catalog", name), "utf8");
    expect(renderCatalogMarkdown(catalog)).toBe(await committed("catalog.md"));
    expect(catalogJson(catalog)).toBe(await committed("catalog.json"));
  });

  it("describes each capability with its agent, schemas and owner, and each goal kind with what it uses", async () => {
    const { capabilities, goalKinds } = await builtinCatalog();
    expect(capabilities.map((c) => c.capability)).toEqual(
      expect.arrayContaining([
        "util.sleep",
        "text.summarize",
        "http.fetch",
        "shell.exec",
        "data.transform",
      ]),
    );
    expect(capabilities.find((c) => c.capability === "util.sleep")).toMatchObject({
      agent: "util",
      owner: "agentmesh",
      inputSchema: { required: ["ms"] },
      outputSchema: { required: ["sleptMs"] },
    });
    expect(goalKinds.find((g) => g.goalKind === "research")?.strategies[0]).toMatchObject({
      capabilities: ["data.transform", "text.keywords"],
      subGoals: ["summarize"],
    });
    const markdown = renderCatalogMarkdown({ capabilities, goalKinds });
    expect(markdown).toContain("| [`util.sleep`](#utilsleep) | util | 1.0.0 | agentmesh |");
    expect(markdown).toContain("### goal wait");
    // The declared metadata: side effects, scopes and limits, in both forms.
    expect(capabilities.find((c) => c.capability === "http.fetch")).toMatchObject({
      sideEffect: "destructive",
      authScope: "",
      rateLimit: null,
      reliability: null,
    });
    expect(markdown).toContain(
      "| [`http.fetch`](#httpfetch) | http | 1.0.0 | agentmesh | destructive | — | none |",
    );
    expect(markdown).toContain("- reliability: not measured (generated offline)");
  });

  it("names each card's signer and each step's version range", async () => {
    const { capabilities } = await builtinCatalog();
    // The built-in agents ship unsigned cards.
    expect(capabilities.every((c) => c.signer === "")).toBe(true);
    const signed = defineAgent({
      name: "shout",
      version: "2.1.0",
      signature: { signer: "acme-release", signature: "c2ln" },
      skills: { "shout.upper": { description: "Shouts.", handler: () => ({}) } },
    });
    const playbook = create(PlaybookSchema, {
      goalKind: "shout",
      strategies: [
        {
          name: "new",
          steps: [{ stepId: "s", capability: "shout.upper", versionRange: "^2.0.0" }],
        },
      ],
    });
    const catalog = buildCatalog([signed], [playbook]);
    expect(catalog.capabilities[0]?.signer).toBe("acme-release");
    expect(catalog.goalKinds[0]?.strategies[0]?.versionRanges).toEqual({ "shout.upper": "^2.0.0" });
    const markdown = renderCatalogMarkdown(catalog);
    expect(markdown).toContain(
      "- card signer: `acme-release` (verified by the registry at registration)",
    );
    expect(markdown).toContain("- strategy `new` (uses `shout.upper` ^2.0.0)");
  });
});
