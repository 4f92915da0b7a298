/**
 * `agentmesh cards keygen|sign`: a key pair whose private half only its owner
 * reads, a signers-file entry the registry's trust roots parse, and signatures
 * of a card file and of an agent module that verify against it.
 */

import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromJson, toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { utilAgent } from "../../agents/util.js";
import { AgentCardSchema } from "../../gen/agentmesh/v1/registry_pb.js";
import { verifyCard } from "../../lib/signing/card-signature.js";
import { parseCardTrust } from "../../lib/signing/card-trust.js";
import { agentCard } from "../../sdk/agent/define-agent.js";
import { cards } from "./cards.js";

/** Runs the command and returns what it printed on stdout. */
async function run(args: string[]): Promise<string> {
  const out: string[] = [];
  const log = vi.spyOn(console, "log").mockImplementation((s: unknown) => void out.push(String(s)));
  const err = vi.spyOn(console, "error").mockImplementation(() => undefined);
  try {
    expect(await cards.run(args)).toBe(0);
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
  return out.join("\n");
}

describe("agentmesh cards", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "cards-cli-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("generates a key pair, signs a card file and an agent module, and the signatures verify", async () => {
    const entry = await run(["keygen", "--signer", "acme-release", "--out", dir]);
    const trust = parseCardTrust(entry);
    expect(trust.signers()).toEqual(["acme-release"]);
    expect((await stat(join(dir, "acme-release.key"))).mode & 0o777).toBe(0o600);
    await expect(cards.run(["keygen", "--signer", "acme-release", "--out", dir])).rejects.toThrow(
      /exists; not overwriting/,
    );

    const key = join(dir, "acme-release.key");
    const cardFile = join(dir, "card.json");
    const card = agentCard(utilAgent);
    await writeFile(cardFile, JSON.stringify(toJson(AgentCardSchema, card)));
    const signed = fromJson(
      AgentCardSchema,
      JSON.parse(await run(["sign", cardFile, "--signer", "acme-release", "--key", key])),
    );
    expect(verifyCard(signed, trust)).toEqual({ status: "valid", signer: "acme-release" });

    const printed = JSON.parse(
      await run([
        "sign",
        "agents/util.ts",
        "--signer",
        "acme-release",
        "--key",
        key,
        "--export",
        "utilAgent",
      ]),
    ) as { signer: string; signature: string };
    expect(printed.signer).toBe("acme-release");
    expect(printed.signature).toBe(signed.signature?.signature);
    expect(await readFile(join(dir, "acme-release.pub"), "utf8")).toContain("BEGIN PUBLIC KEY");
  });
});
