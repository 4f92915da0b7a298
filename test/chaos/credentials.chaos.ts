/**
 * Credentials changing under a running mesh of processes, under a steady
 * stream of goals: every certificate re-issued by the dev CA (each process
 * picks up its new pair without a restart), then the policy bundle swapped
 * for one that takes `CancelGoal` away from the `cli` identity. Not one call
 * may fail, except the intended denial, which must appear once the new bundle
 * is loaded; and the audit holds.
 */
import { randomUUID } from "node:crypto";
import { copyFile, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { bundleWithData } from "../../lib/policy/testing.js";
import { needPostgres } from "../../lib/testing/infra.js";
import { type PrivateNatsServer, startNatsServer } from "../../lib/testing/nats-server.js";
import { sleep, waitFor } from "../../lib/testing/wait-for.js";
import { certPaths, issueCertificate } from "../../lib/tls/dev-ca.js";
import { auditFindings, auditGoals } from "./audit.js";
import { type ChaosMesh, chaosIdentities, startChaosMesh } from "./chaos-mesh.js";
import { putSlowChain, startWorkload, type WorkloadResult } from "./workload.js";

const pg = await needPostgres();

/** Not one submission failed, and the audit is clean. */
async function expectUntouched(mesh: ChaosMesh, result: WorkloadResult) {
  expect(result.failures).toEqual({});
  expect(result.unacked).toEqual([]);
  const audit = await auditGoals(mesh, result.acked);
  expect(audit.acked).toBeGreaterThanOrEqual(10);
  expect(auditFindings(audit)).toEqual([]);
}

/** Serial number of the certificate the server at `address` presents now. */
async function servedSerial(mesh: ChaosMesh, address: string): Promise<string> {
  const files = certPaths(mesh.certDir, "cli");
  const [host, port] = address.split(":");
  const [cert, key, ca] = await Promise.all([
    readFile(files.cert),
    readFile(files.key),
    readFile(files.ca),
  ]);
  return new Promise((resolveSerial, reject) => {
    const socket = tlsConnect(
      {
        host,
        port: Number(port),
        cert,
        key,
        ca,
        checkServerIdentity: () => undefined,
        ALPNProtocols: ["h2"],
      },
      () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.destroy();
        resolveSerial(serial);
      },
    );
    socket.once("error", reject);
  });
}

describe.skipIf(!pg)("chaos: rotating certificates and swapping the policy under load", () => {
  let nats: PrivateNatsServer;
  let mesh: ChaosMesh;
  let policyDir: string;
  beforeAll(async () => {
    // A copy of the committed bundle the scenario may swap.
    policyDir = await mkdtemp(join(tmpdir(), "chaos-policy-"));
    await copyFile(resolve("bundles/agentmesh.tar.gz"), join(policyDir, "agentmesh.tar.gz"));
    nats = await startNatsServer();
    mesh = await startChaosMesh({
      databaseUrl: pg!.url,
      natsUrl: nats.url,
      executors: 1,
      policyPath: join(policyDir, "agentmesh.tar.gz"),
    });
    await putSlowChain(mesh);
  });
  afterAll(async () => {
    await mesh?.stop();
    await nats?.stop();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  });

  it("re-issues every certificate while running: zero failed calls", async () => {
    const addresses = [mesh.executorAddress(0), mesh.env.AGENTMESH_REGISTRY_ADDR!];
    const before = await Promise.all(addresses.map((a) => servedSerial(mesh, a)));
    const load = startWorkload(mesh, { rate: 3 });
    await sleep(2_000);
    for (const name of chaosIdentities) await issueCertificate({ certDir: mesh.certDir, name });
    // Each server presents its new certificate without a restart.
    await waitFor(
      "servers to present the new certificates",
      async () => {
        const now = await Promise.all(addresses.map((a) => servedSerial(mesh, a)));
        return now.every((s, i) => s !== before[i]);
      },
      30_000,
      500,
    );
    await sleep(3_000); // keep the load on the new certificates for a while
    await expectUntouched(mesh, await load.stop());
  });

  it("swaps the policy bundle while running: only the intended denial", async () => {
    const cancel = async (): Promise<Code | "ok"> => {
      try {
        await mesh
          .executor(0)
          .cancelGoal({ tenantId: mesh.tenantId, goalId: randomUUID(), reason: "probe" });
        return "ok";
      } catch (err) {
        return MeshError.from(err).code;
      }
    };
    expect(await cancel()).not.toBe(Code.PermissionDenied);

    const load = startWorkload(mesh, { rate: 3 });
    await sleep(2_000);
    // The new bundle: cli keeps everything but CancelGoal. Written whole, then renamed in.
    const data = JSON.parse(await readFile(resolve("policies/data.json"), "utf8")) as {
      agentmesh: { config: { service_grants: Record<string, string[]> } };
    };
    data.agentmesh.config.service_grants.cli = [
      "agentmesh.v1.ExecutorService/SubmitGoal",
      "agentmesh.v1.ExecutorService/GetGoal",
      "agentmesh.v1.ExecutorService/ListGoals",
      "agentmesh.v1.ExecutorService/WatchGoal",
      "agentmesh.v1.RegistryService/*",
      "agentmesh.v1.PlannerService/*",
      "agentmesh.v1.LearningService/*",
    ];
    await writeFile(join(policyDir, "bundle.next"), await bundleWithData(data));
    await rename(join(policyDir, "bundle.next"), join(policyDir, "agentmesh.tar.gz"));
    await waitFor(
      "the new policy to deny CancelGoal",
      async () => (await cancel()) === Code.PermissionDenied,
      30_000,
      250,
    );
    await sleep(3_000);
    await expectUntouched(mesh, await load.stop());
  });
});
