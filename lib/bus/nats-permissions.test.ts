import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderNatsConfig } from "./nats-config.js";
import {
  busGrantsFromPolicyData,
  busRoleOf,
  capabilityGrantsOf,
  capabilityMatches,
  capabilitySubjectPattern,
  natsPermissions,
} from "./nats-permissions.js";
import { checkNatsTransport, isLoopbackUrl } from "./nats-tls.js";

const grants = busGrantsFromPolicyData(JSON.parse(readFileSync("policies/data.json", "utf8")));
const known = ["text.summarize", "text.stats", "shell.exec", "mcp.github.search", "util.echo"];
const perms = (identity: string) =>
  natsPermissions({ identity, grants, prefix: "agentmesh", knownCapabilities: known });

describe("bus permissions from the policy grants", () => {
  it("lets an agent consume the version queues listed for its granted capabilities only", () => {
    const p = natsPermissions({
      identity: "agent-text",
      grants,
      prefix: "agentmesh",
      knownCapabilities: known,
      agentVersions: ["text.summarize@2.1.0", "shell.exec@1.0.0"],
    });
    expect(p.publish).toContain(
      "$JS.API.CONSUMER.CREATE.AGENTMESH_JOBS.jobs_text_summarize__v2_1_0.agentmesh.jobs._v.2_1_0.text.summarize",
    );
    expect(p.publish).toContain(
      "$JS.API.CONSUMER.MSG.NEXT.AGENTMESH_JOBS.jobs_text_summarize__v2_1_0",
    );
    expect(p.publish.some((s) => s.includes("shell_exec__v"))).toBe(false);
    expect(() =>
      natsPermissions({
        identity: "agent-text",
        grants,
        prefix: "agentmesh",
        knownCapabilities: known,
        agentVersions: ["text.summarize"],
      }),
    ).toThrow(/expected <capability>@<version>/);
  });

  it("reads the grants the policy decides with, prefix grants included", () => {
    expect(capabilityGrantsOf(grants, "agent-text")).toEqual(["text.*"]);
    expect(capabilityGrantsOf(grants, "agent-mcp-github")).toEqual(["mcp.github.*"]);
    expect(capabilityGrantsOf(grants, "agent-mcp-")).toEqual([]);
    expect(busRoleOf(grants, "agent-shell")).toBe("agent");
    expect(busRoleOf(grants, "registry")).toBe("other");
    expect(busRoleOf(grants, "executor")).toBe("executor");
  });

  it("matches capabilities as the policy does and writes them as subject patterns", () => {
    expect(capabilityMatches("text.*", "text.summarize")).toBe(true);
    expect(capabilityMatches("text.*", "textual.x")).toBe(false);
    expect(capabilityMatches("*", "shell.exec")).toBe(true);
    expect(capabilitySubjectPattern("text.*")).toBe("text.>");
    expect(capabilitySubjectPattern("*")).toBe(">");
    expect(capabilitySubjectPattern("http.fetch")).toBe("http.fetch");
    expect(() => capabilitySubjectPattern("tex*")).toThrow(/cannot be a NATS subject permission/);
  });

  it("lets an agent pull, ack and report only within its grants", () => {
    const p = perms("agent-text");
    expect(p.publish).toContain("$JS.API.CONSUMER.MSG.NEXT.AGENTMESH_JOBS.jobs_text_summarize");
    expect(p.publish).toContain("$JS.ACK.AGENTMESH_JOBS.jobs_text_stats.>");
    expect(p.publish).toContain(
      "$JS.API.CONSUMER.CREATE.AGENTMESH_JOBS.jobs_text_summarize.agentmesh.jobs.text.summarize",
    );
    expect(p.publish).toContain("agentmesh.results.agent-text.>");
    expect(p.publish).toContain("agentmesh.dlq.text.>");
    expect(p.publish).toContain("agentmesh.handbacks.*.text.>");
    expect(p.publish).toContain("$JS.API.STREAM.MSG.GET.AGENTMESH_HANDBACKS");
    expect(p.publish.join(" ")).not.toMatch(/shell|results\.>|agentmesh\.jobs\.>|STREAM\.CREATE/);
    expect(p.subscribe).toEqual(["_INBOX.agent-text.>", "agentmesh.control.cancel.*"]);
  });

  it("gives the executor the mesh's side of every stream but no job pull", () => {
    const p = perms("executor");
    expect(p.publish).toContain("agentmesh.jobs.>");
    expect(p.publish).toContain("$JS.API.CONSUMER.MSG.NEXT.AGENTMESH_RESULTS.results");
    expect(p.publish).toContain("$JS.API.STREAM.CREATE.AGENTMESH_JOBS");
    expect(p.publish.join(" ")).not.toMatch(/MSG\.NEXT\.AGENTMESH_JOBS|ACK\.AGENTMESH_JOBS/);
    expect(p.publish.filter((s) => s.startsWith("agentmesh.results."))).toEqual([]);
  });

  it("gives components that do not use the bus nothing but their inbox", () => {
    expect(perms("registry")).toEqual({
      publish: ["$JS.API.INFO"],
      subscribe: ["_INBOX.registry.>"],
    });
  });

  it("renders one verified-and-mapped user per identity", () => {
    const text = renderNatsConfig({
      grants,
      trustDomain: "agentmesh.local",
      namespace: "agentmesh",
      tls: { cert: "/c/tls.crt", key: "/c/tls.key", ca: "/c/ca.crt" },
      knownCapabilities: known,
      extraAgents: ["agent-mcp-github"],
    });
    expect(text).toContain("verify_and_map: true");
    expect(text).toContain('user: "spiffe://agentmesh.local/ns/agentmesh/sa/agent-mcp-github"');
    expect(text).toContain('"$JS.API.CONSUMER.MSG.NEXT.AGENTMESH_JOBS.jobs_mcp_github_search"');
    expect(text.match(/user: /g)).toHaveLength(6 + 6 + 1);
  });
});

describe("the NATS transport rule", () => {
  it("wants tls:// except for a loopback dev server or an explicit opt-out", () => {
    expect(checkNatsTransport("tls://nats:4222")).toBe("tls");
    expect(checkNatsTransport("nats://127.0.0.1:4222")).toBe("plaintext");
    expect(checkNatsTransport("localhost:4222")).toBe("plaintext");
    expect(checkNatsTransport("nats://nats:4222", { allowPlaintext: true })).toBe("plaintext");
    expect(() => checkNatsTransport("nats://nats:4222")).toThrow(/plaintext NATS .* refused/);
    expect(() => checkNatsTransport(["tls://a:4222", "nats://127.0.0.1:4222"])).toThrow(/mix/);
    expect(isLoopbackUrl("nats://127.0.0.1.evil.example:4222")).toBe(false);
  });
});
