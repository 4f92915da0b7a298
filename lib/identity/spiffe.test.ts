import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Code } from "../errors/mesh-error.js";
import {
  agentName,
  isAgentName,
  parseSpiffeId,
  peerFromSubjectAltName,
  spiffeId,
  spiffeIdsFromSubjectAltName,
  tryParseSpiffeId,
} from "./spiffe.js";

describe("SPIFFE identities", () => {
  it("builds and parses the mesh's IDs", () => {
    const id = spiffeId({ name: "executor" });
    expect(id).toBe("spiffe://agentmesh.local/ns/agentmesh/sa/executor");
    expect(parseSpiffeId(id)).toEqual({
      spiffeId: id,
      trustDomain: "agentmesh.local",
      namespace: "agentmesh",
      name: "executor",
    });
    expect(
      spiffeId({ trustDomain: "prod.example", namespace: "mesh", name: agentName("text") }),
    ).toBe("spiffe://prod.example/ns/mesh/sa/agent-text");
    expect(isAgentName("agent-text")).toBe(true);
    expect(isAgentName("executor")).toBe(false);
  });

  it("rejects malformed IDs and parts with INVALID_ARGUMENT", () => {
    for (const bad of [
      "",
      "spiffe://agentmesh.local/ns/agentmesh/sa/",
      "spiffe://agentmesh.local/ns/agentmesh/sa/Executor",
      "spiffe://agentmesh.local/ns/agentmesh/sa/a/b",
      "spiffe://agentmesh.local/sa/executor",
      "https://agentmesh.local/ns/agentmesh/sa/executor",
      "spiffe://agent mesh/ns/agentmesh/sa/executor",
      `spiffe://agentmesh.local/ns/agentmesh/sa/${"a".repeat(64)}`,
    ]) {
      expect(tryParseSpiffeId(bad), bad).toBeUndefined();
      expect(() => parseSpiffeId(bad)).toThrow(
        expect.objectContaining({ code: Code.InvalidArgument }),
      );
    }
    expect(() => spiffeId({ name: "bad_name" })).toThrow(
      expect.objectContaining({ code: Code.InvalidArgument }),
    );
    expect(() => agentName("")).toThrow();
  });

  it("round-trips every valid name", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/), (name) => {
        expect(parseSpiffeId(spiffeId({ name })).name).toBe(name);
      }),
    );
  });

  it("reads the SPIFFE ID from a certificate's SAN string", () => {
    const san =
      "DNS:executor, DNS:localhost, URI:spiffe://agentmesh.local/ns/agentmesh/sa/executor, IP Address:127.0.0.1";
    expect(spiffeIdsFromSubjectAltName(san)).toEqual([
      "spiffe://agentmesh.local/ns/agentmesh/sa/executor",
    ]);
    expect(peerFromSubjectAltName(san)?.name).toBe("executor");
    // Quoted values (Node quotes values with special characters).
    expect(
      spiffeIdsFromSubjectAltName('URI:"spiffe://agentmesh.local/ns/agentmesh/sa/x, y"'),
    ).toEqual(["spiffe://agentmesh.local/ns/agentmesh/sa/x, y"]);
    // Zero or two SPIFFE IDs is not an SVID.
    expect(peerFromSubjectAltName("DNS:executor")).toBeUndefined();
    expect(peerFromSubjectAltName(undefined)).toBeUndefined();
    expect(
      peerFromSubjectAltName(
        "URI:spiffe://agentmesh.local/ns/agentmesh/sa/a, URI:spiffe://agentmesh.local/ns/agentmesh/sa/b",
      ),
    ).toBeUndefined();
    expect(peerFromSubjectAltName("URI:https://example.com")).toBeUndefined();
  });
});
