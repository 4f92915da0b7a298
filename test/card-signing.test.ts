/**
 * Signed agent cards (ADR-015) at a real registry over mutual TLS with the
 * compiled policy and a real store: a bad signature is always refused, an
 * unsigned card or an unknown signer is refused where the policy requires a
 * trusted signer, a card signed by a trusted signer is admitted, and an agent
 * run by the SDK with a signing key registers signed.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { createInProcessBus } from "../lib/bus/in-process-bus.js";
import { Code, isMeshError } from "../lib/errors/mesh-error.js";
import { createPolicyCheck } from "../lib/policy/authorizer.js";
import { openPolicyEngine, type PolicyEngine } from "../lib/policy/engine.js";
import { bundleWithData, committedDataPath } from "../lib/policy/testing.js";
import type { Client, MeshServer } from "../lib/rpc/index.js";
import { generateSigningKey, signCard, trustOf } from "../lib/signing/card-signature.js";
import { parseCardTrust } from "../lib/signing/card-trust.js";
import { needPostgres } from "../lib/testing/infra.js";
import { grpcRegistryLink } from "../sdk/agent/grpc-registry-link.js";
import { agentCard, defineAgent, runAgent } from "../sdk/index.js";
import { cardAdmission } from "../services/registry/card-admission.js";
import { createRegistryService, type RegistryServiceHandle } from "../services/registry/index.js";
import { type Harness, openHarness } from "./control-plane-harness.js";

const pg = await needPostgres();

const release = generateSigningKey();
const stranger = generateSigningKey();

const agentOf = (capability: string, version = "2.0.0") =>
  defineAgent({
    name: "signed",
    version,
    skills: { [capability]: { description: capability, handler: () => ({ ok: true }) } },
  });

async function refusal(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (err) {
    if (!isMeshError(err)) throw err;
    return { code: err.code, message: err.message };
  }
  throw new Error("expected a refusal");
}

describe.skipIf(!pg)("signed agent cards at the registry", () => {
  let h: Harness;
  let dir: string;
  let strict: PolicyEngine;
  let service: RegistryServiceHandle;
  let server: MeshServer;
  let asAgent: Client<typeof RegistryService>;
  let asCli: Client<typeof RegistryService>;

  beforeAll(async () => {
    h = await openHarness(pg!.url, ["registry", "agent-test", "cli"]);
    dir = await mkdtemp(join(tmpdir(), "card-signing-"));
    // The shipped data with one change: capabilities under test.signed.* need a trusted signer.
    const data = JSON.parse(await readFile(committedDataPath, "utf8"));
    data.agentmesh.config.card_signing.required_for = ["test.signed.*"];
    await writeFile(join(dir, "strict.tar.gz"), await bundleWithData(data));
    strict = await openPolicyEngine({ path: join(dir, "strict.tar.gz"), watch: false });
    // Trust roots as the signers file states them: only "release".
    const trust = parseCardTrust(JSON.stringify({ signers: { release: release.publicKeyPem } }));
    service = createRegistryService({
      store: h.store,
      log: h.log,
      admission: cardAdmission({
        trust: { current: () => trust },
        check: createPolicyCheck(strict),
      }),
    });
    server = await h.serve("registry", RegistryService, service.impl);
    asAgent = await h.client(RegistryService, server, "registry", "agent-test");
    asCli = await h.client(RegistryService, server, "registry", "cli");
  });

  afterAll(async () => {
    await service?.stop();
    await strict?.close();
    await h?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const register = (card: ReturnType<typeof agentCard>) =>
    grpcRegistryLink(asAgent).register(card, { instanceId: `i-${Math.random()}` });

  it("refuses a card whose signature does not match, wherever its capabilities are", async () => {
    for (const capability of ["test.signed.run", "test.free.run"]) {
      const signed = signCard(agentCard(agentOf(capability)), {
        signer: "release",
        privateKeyPem: release.privateKeyPem,
      });
      signed.version = "2.0.1"; // changed after signing
      const r = await refusal(register(signed));
      expect(r.code).toBe(Code.InvalidArgument);
      expect(r.message).toContain("agent card signed 2.0.1 has a bad signature by signer release");
    }
    // Signed by another key under the trusted name: as bad.
    const forged = signCard(agentCard(agentOf("test.free.run")), {
      signer: "release",
      privateKeyPem: stranger.privateKeyPem,
    });
    expect((await refusal(register(forged))).code).toBe(Code.InvalidArgument);
  });

  it("refuses unsigned and unknown-signer cards where the policy requires a trusted signer", async () => {
    const unsigned = await refusal(register(agentCard(agentOf("test.signed.run"))));
    expect(unsigned.code).toBe(Code.PermissionDenied);
    expect(unsigned.message).toBe(
      'agent card signed 2.0.0 is unsigned but capabilities test.signed.run need a card signed by a trusted signer (card_signing.required_for "test.signed.*")',
    );
    const unknown = await refusal(
      register(
        signCard(agentCard(agentOf("test.signed.run")), {
          signer: "stranger",
          privateKeyPem: stranger.privateKeyPem,
        }),
      ),
    );
    expect(unknown.code).toBe(Code.PermissionDenied);
    expect(unknown.message).toContain(
      "is signed by stranger, a signer the registry does not trust",
    );
  });

  it("admits a card signed by a trusted signer and records the signer", async () => {
    const card = signCard(agentCard(agentOf("test.signed.run")), {
      signer: "release",
      privateKeyPem: release.privateKeyPem,
    });
    const { agentId } = await register(card);
    const { agent } = await asCli.getAgent({ agentId });
    expect(agent?.signer).toBe("release");
    expect(agent?.card?.signature?.signer).toBe("release");
  });

  it("admits unsigned and unknown-signer cards where nothing requires a signer (the shipped default)", async () => {
    const { agentId } = await register(agentCard(agentOf("test.free.run")));
    expect((await asCli.getAgent({ agentId })).agent?.signer).toBe("");
    const card = signCard(agentCard(agentOf("test.free.run")), {
      signer: "stranger",
      privateKeyPem: stranger.privateKeyPem,
    });
    const other = await register(card);
    expect((await asCli.getAgent({ agentId: other.agentId })).agent?.signer).toBe("");
    // The committed data requires no signer anywhere.
    const shipped = JSON.parse(await readFile(committedDataPath, "utf8"));
    expect(shipped.agentmesh.config.card_signing).toEqual({ required_for: [], signers_for: {} });
  });

  it("an agent run by the SDK with a signing key registers signed; a shipped signature works too", async () => {
    const bus = createInProcessBus();
    const link = grpcRegistryLink(asAgent);
    const running = await runAgent(agentOf("test.signed.run", "2.1.0"), {
      bus,
      registry: link,
      handleSignals: false,
      signingKey: { signer: "release", privateKeyPem: release.privateKeyPem },
    });
    expect((await asCli.getAgent({ agentId: running.agentId })).agent?.signer).toBe("release");
    await running.stop();
    // What `agentmesh cards sign` prints for a module, shipped in the definition.
    const shipped = signCard(agentCard(agentOf("test.signed.run", "2.2.0")), {
      signer: "release",
      privateKeyPem: release.privateKeyPem,
    }).signature!;
    const withSignature = defineAgent({
      ...agentOf("test.signed.run", "2.2.0"),
      signature: { signer: shipped.signer, signature: shipped.signature },
    });
    const second = await runAgent(withSignature, { bus, registry: link, handleSignals: false });
    expect((await asCli.getAgent({ agentId: second.agentId })).agent?.signer).toBe("release");
    await second.stop();
    // A shipped signature that does not match the card: the agent fails at start, no retrying.
    const tampered = defineAgent({
      ...agentOf("test.signed.run", "2.2.1"),
      signature: { signer: shipped.signer, signature: shipped.signature },
    });
    const started = Date.now();
    const err = await runAgent(tampered, { bus, registry: link, handleSignals: false }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isMeshError(err) && err.code).toBe(Code.InvalidArgument);
    expect((err as Error).message).toContain("agent card signed 2.2.1 has a bad signature");
    expect(Date.now() - started).toBeLessThan(10_000);
    await bus.close();
    expect(trustOf({}).signers()).toEqual([]);
  });
});
