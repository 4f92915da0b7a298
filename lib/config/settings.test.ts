import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { shippedSources } from "../testing/shipped-sources.js";
import { packagePath } from "./package-root.js";
import { renderConfigurationReference } from "./reference.js";
import { allSettings, settings } from "./settings.js";

/** Variable names a source file reads or names: `env.X`, `env["X"]`, and any `AGENTMESH_X`. */
function namesIn(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(/\benv(?:\.|\[")([A-Z][A-Z0-9_]*)\b/g)) names.add(m[1]!);
  // A name ending in "_" is a prefix in prose (`AGENTMESH_BUS_*`), not a variable.
  for (const m of text.matchAll(/\b(AGENTMESH_[A-Z][A-Z0-9_]*[A-Z0-9])\b(?!_)/g)) names.add(m[1]!);
  return [...names];
}

/** Read by Node.js, the test runner or the Go toolchain, not by agentmesh. */
const notOurs = new Set(["PATH", "VITEST", "CI", "HOME", "NODE_ENV", "GOPATH"]);
/**
 * Names that look like settings but are not: the default job stream's name, and
 * the marker the shell agent puts in its children's environment to find them.
 */
const notVariables = new Set(["AGENTMESH_JOBS", "AGENTMESH_SHELL_JOB"]);

describe("settings registry", () => {
  it("docs/configuration.md is the reference generated from the registry", () => {
    const committed = readFileSync(packagePath("docs", "configuration.md"), "utf8");
    // On failure: node bin/agentmesh.js config reference > docs/configuration.md
    expect(committed).toBe(renderConfigurationReference());
  });

  it("registers every variable shipped code reads or names", () => {
    const known = new Set(allSettings.map((s) => s.name));
    const unknown: string[] = [];
    for (const file of shippedSources()) {
      if (file.endsWith(join("config", "settings.ts"))) continue;
      for (const name of namesIn(readFileSync(file, "utf8"))) {
        if (!known.has(name) && !notOurs.has(name) && !notVariables.has(name)) {
          unknown.push(`${relative(packagePath(), file)}: ${name}`);
        }
      }
    }
    expect(unknown).toEqual([]);
  });

  it("names each variable once", () => {
    const names = allSettings.map((s) => s.name);
    expect(names.length).toBe(new Set(names).size);
  });

  it("parses values strictly and names the variable in the error", () => {
    expect(settings.gatewayPort.read({})).toBe(8080);
    expect(settings.gatewayPort.read({ AGENTMESH_GATEWAY_PORT: "" })).toBe(8080);
    expect(settings.gatewayPort.read({ AGENTMESH_GATEWAY_PORT: "0" })).toBe(0);
    expect(() => settings.gatewayPort.read({ AGENTMESH_GATEWAY_PORT: "80a" })).toThrow(
      'AGENTMESH_GATEWAY_PORT="80a": expected a port 0-65535',
    );
    expect(() => settings.gatewayPort.read({ AGENTMESH_GATEWAY_PORT: "70000" })).toThrow(/port/);
    expect(
      settings.corsOrigins.read({
        AGENTMESH_CORS_ORIGINS: " https://a.example, https://b.example ,",
      }),
    ).toEqual(["https://a.example", "https://b.example"]);
    expect(settings.devCerts.read({ AGENTMESH_DEV_CERTS: "false" })).toBe(false);
    expect(() => settings.devCerts.read({ AGENTMESH_DEV_CERTS: "no" })).toThrow(/true or false/);
    expect(() => settings.busMaxDeliver.read({ AGENTMESH_BUS_MAX_DELIVER: "-1" })).toThrow(
      /positive integer/,
    );
  });
});
