/**
 * The bus under zero trust, against the pinned nats-server running the
 * configuration `agentmesh nats config` generates from policies/data.json:
 * plaintext and foreign certificates never get a connection, an unknown
 * identity is not authorized, and each identity can do only what its grants
 * say — seen from the client, as an attacker holding an agent's key would.
 */
import { cp, readFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type StepResult,
  StepResultSchema,
  StepResultStatus,
} from "../gen/agentmesh/v1/jobs_pb.js";
import { busNames } from "../lib/bus/bus-names.js";
import { connectBus } from "../lib/bus/connect-bus.js";
import type { JobBus } from "../lib/bus/index.js";
import { connectNats } from "../lib/bus/jetstream-bus.js";
import { stepJob } from "../lib/bus/job-bus.contract.js";
import { inboxPrefixOf } from "../lib/bus/nats-permissions.js";
import { type NatsTls, natsTlsOptions } from "../lib/bus/nats-tls.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { runId } from "../lib/testing/infra.js";
import { startMeshNatsServer } from "../lib/testing/mesh-nats-server.js";
import type { PrivateNatsServer } from "../lib/testing/nats-server.js";
import {
  type CertWatcher,
  certPaths,
  ensureIdentities,
  initCa,
  issueCertificate,
  watchCertificates,
} from "../lib/tls/index.js";

const natsId = "spiffe://agentmesh.local/ns/agentmesh/sa/nats";
const identities = ["nats", "executor", "learning", "agent-text", "agent-shell", "agent-rogue"];

describe("NATS over mutual TLS with per-identity permissions", () => {
  const prefix = runId("mtls");
  const names = busNames(prefix);
  const certDir = join(tmpdir(), `${prefix}-certs`);
  const foreignDir = join(tmpdir(), `${prefix}-foreign`);
  let nats: PrivateNatsServer;
  const certs = new Map<string, CertWatcher>();
  const tlsOf = (name: string): NatsTls => natsTlsOptions(certs.get(name)!, natsId);
  let executor: JobBus;

  beforeAll(async () => {
    await ensureIdentities({ certDir, names: identities });
    await initCa({ certDir: foreignDir });
    await issueCertificate({ certDir: foreignDir, name: "agent-text" });
    for (const name of identities) {
      certs.set(name, await watchCertificates({ dir: certPaths(certDir, name).dir }));
    }
    nats = await startMeshNatsServer({
      certDir,
      prefix,
      knownCapabilities: ["text.summarize", "text.stats", "shell.exec"],
    });
    // The executor as `agentmesh serve executor` connects: it provisions the streams.
    executor = await connectBus({
      natsUrl: nats.url,
      explicit: true,
      prefix,
      identity: { name: "executor", certs: certs.get("executor")! },
    });
  });

  afterAll(async () => {
    await executor?.close({ graceMs: 0 });
    await nats?.stop();
    for (const c of certs.values()) c.close();
  });

  it("refuses a plaintext client before any message", async () => {
    const port = nats.port;
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = tcpConnect({ host: "127.0.0.1", port });
      let text = "";
      socket.on("data", (chunk) => {
        text += chunk.toString();
        if (text.includes("INFO ") && !text.includes("CONNECT_SENT")) {
          text += "CONNECT_SENT";
          socket.write(
            `CONNECT {"verbose":false}\r\nPUB ${names.jobSubject("shell.exec")} 2\r\nhi\r\nPING\r\n`,
          );
        }
      });
      socket.on("close", () => resolve(text));
      socket.on("error", reject);
    });
    // The server wants a TLS handshake and hangs up on plaintext: no PONG, nothing stored.
    expect(reply).toContain('"tls_required":true');
    expect(reply).not.toMatch(/PONG|\+OK/);
    const nc = await connectNats(nats.url, "executor-admin", 2_000, {
      tls: tlsOf("executor").options,
      inboxPrefix: inboxPrefixOf("executor"),
    });
    const info = await (await jetstreamManager(nc)).streams.info(names.streams.jobs);
    await nc.close();
    expect(info.state.messages).toBe(0);
    // nats.js told not to use TLS gets no connection either.
    await expect(
      connect({ servers: `127.0.0.1:${port}`, tls: null, timeout: 2_000 }),
    ).rejects.toThrow();
  });

  it("refuses a client without a certificate, and one from a foreign CA", async () => {
    const ca = (await readFile(certPaths(certDir, "nats").ca)).toString();
    const noCertificate = { ca, checkServerIdentity: () => undefined };
    await expect(
      connect({
        servers: nats.url,
        tls: noCertificate,
        timeout: 2_000,
        reconnect: false,
      }),
    ).rejects.toThrow();
    const foreign = await watchCertificates({ dir: certPaths(foreignDir, "agent-text").dir });
    try {
      const tls = natsTlsOptions(foreign, natsId);
      tls.options.ca = ca; // it trusts our server; we must not trust it
      await expect(
        connect({ servers: nats.url, tls: tls.options, timeout: 2_000, reconnect: false }),
      ).rejects.toThrow();
    } finally {
      foreign.close();
    }
    expect(nats.log()).toMatch(/TLS handshake error/);
  });

  it("refuses a mesh certificate whose identity has no user", async () => {
    await expect(
      connectNats(nats.url, "rogue", 2_000, { tls: tlsOf("agent-rogue").options }),
    ).rejects.toThrow(/Authorization Violation/i);
  });

  it("a client refuses a server that is not the mesh's NATS identity", async () => {
    const wrong = natsTlsOptions(
      certs.get("agent-text")!,
      "spiffe://agentmesh.local/ns/agentmesh/sa/executor",
    );
    await expect(connectNats(nats.url, "picky", 2_000, { tls: wrong.options })).rejects.toThrow();
  });

  it("agent-text consumes text jobs and reports on its own result subject", async () => {
    const agent = await connectBus({
      natsUrl: nats.url,
      explicit: true,
      prefix,
      identity: { name: "agent-text", certs: certs.get("agent-text")! },
    });
    const results: { subject: string; result: StepResult }[] = [];
    const consumer = await executor.consumeResults({
      handler: (d) => {
        results.push({ subject: d.subject, result: d.data });
      },
    });
    const jobs = await agent.consumeJobs("text.summarize", {
      handler: async (d) => {
        await agent.publishResult(
          create(StepResultSchema, {
            attemptId: d.data.attemptId,
            goalId: d.data.goalId,
            tenantId: d.data.tenantId,
            stepId: d.data.stepId,
            status: StepResultStatus.SUCCEEDED,
          }),
        );
      },
    });
    try {
      const job = stepJob("text.summarize");
      await executor.publishJob(job);
      await expect.poll(() => results.length, { timeout: 10_000 }).toBe(1);
      expect(results[0]?.subject).toBe(names.resultSubject(job.goalId, "agent-text"));
      expect(names.resultPublisherOf(results[0]!.subject)).toBe("agent-text");
      expect(agent.identity).toBe("agent-text");
    } finally {
      await jobs.stop({ graceMs: 0 });
      await consumer.stop({ graceMs: 0 });
      await agent.close({ graceMs: 0 });
    }
  });

  it("agent-text cannot consume shell.exec jobs, read other inboxes or pose as agent-shell", async () => {
    const agent = await connectBus({
      natsUrl: nats.url,
      explicit: true,
      prefix,
      identity: { name: "agent-text", certs: certs.get("agent-text")! },
    });
    // Through the SDK's bus: creating (or finding) the shell.exec consumer is refused.
    const refused = await agent.consumeJobs("shell.exec", { handler: (d) => d.ack() }).then(
      () => undefined,
      (err: unknown) => MeshError.from(err),
    );
    await agent.close({ graceMs: 0 });
    expect(refused?.code).toBe(Code.PermissionDenied);
    expect(refused?.message).toMatch(
      /^agent-text may not consume shell\.exec jobs: NATS refused publish to "\$JS\.API\.CONSUMER\.CREATE\..*shell\.exec"/,
    );

    // As a raw client holding agent-text's key: pull, subscribe and publish are each refused.
    await executor.ensureCapability("shell.exec");
    await executor.publishJob(stepJob("shell.exec"));
    const nc = await connectNats(nats.url, "attacker", 2_000, {
      tls: tlsOf("agent-text").options,
      inboxPrefix: inboxPrefixOf("agent-text"),
    });
    const violations: string[] = [];
    void (async () => {
      for await (const s of nc.status()) if (s.type === "error") violations.push(String(s.error));
    })();
    try {
      await expect(
        nc.request(
          `$JS.API.CONSUMER.MSG.NEXT.${names.streams.jobs}.jobs_shell_exec`,
          '{"batch":1}',
          {
            timeout: 2_000,
          },
        ),
      ).rejects.toThrow(/Permissions Violation for Publish/);
      nc.subscribe(names.jobSubject("shell.exec"));
      nc.subscribe(`${inboxPrefixOf("agent-shell")}.>`);
      nc.publish(names.resultSubject("g1", "agent-shell"), "forged");
      await nc.flush();
      await expect.poll(() => violations.length, { timeout: 5_000 }).toBeGreaterThanOrEqual(3);
      expect(violations.join("\n")).toMatch(/Subscription to ".*\.jobs\.shell\.exec"/);
      expect(violations.join("\n")).toMatch(/Subscription to "_INBOX\.agent-shell\.>"/);
      expect(violations.join("\n")).toMatch(
        new RegExp(
          `Publish to "${names.resultSubject("g1", "agent-shell").replaceAll(".", "\\.")}"`,
        ),
      );
    } finally {
      await nc.close();
    }
    // The shell.exec job is still there for agent-shell.
    const shell = await connectBus({
      natsUrl: nats.url,
      explicit: true,
      prefix,
      identity: { name: "agent-shell", certs: certs.get("agent-shell")! },
    });
    const got: string[] = [];
    const sub = await shell.consumeJobs("shell.exec", {
      handler: (d) => void got.push(d.data.capability),
    });
    await expect.poll(() => got, { timeout: 10_000 }).toEqual(["shell.exec"]);
    await sub.stop({ graceMs: 0 });
    await shell.close({ graceMs: 0 });
  });

  it("the executor publishes jobs but never pulls one", async () => {
    const nc = await connectNats(nats.url, "executor-raw", 2_000, {
      tls: tlsOf("executor").options,
      inboxPrefix: inboxPrefixOf("executor"),
    });
    try {
      await expect(
        nc.request(`$JS.API.CONSUMER.MSG.NEXT.${names.streams.jobs}.jobs_text_summarize`, "{}", {
          timeout: 2_000,
        }),
      ).rejects.toThrow(/Permissions Violation/);
    } finally {
      await nc.close();
    }
  });

  it("presents a rotated certificate from the next connection on", async () => {
    // A folder that starts as agent-text's and is then rotated to another identity's files.
    const dir = join(certDir, "rotating");
    await cp(certPaths(certDir, "agent-text").dir, dir, { recursive: true });
    const rotating = await watchCertificates({ dir, pollIntervalMs: 0 });
    const bus = await connectBus({
      natsUrl: nats.url,
      explicit: true,
      prefix,
      identity: { name: "agent-text", certs: rotating },
    });
    try {
      await cp(certPaths(certDir, "agent-rogue").dir, dir, { recursive: true });
      expect(await rotating.reload()).toBe(true);
      // The live connection keeps its session; a reconnect dials with the new files.
      await nats.kill();
      await nats.start();
      // agent-text's files would be let in; the rotated ones (agent-rogue) are not.
      const sinceRestart = () => nats.log().split("Starting nats-server").at(-1) ?? "";
      await expect.poll(sinceRestart, { timeout: 15_000 }).toMatch(/authentication error/);
      expect(() => bus.checkAvailable()).toThrow(/disconnected/);
      // Rotated back, the same client gets in again by itself.
      await cp(certPaths(certDir, "agent-text").dir, dir, { recursive: true });
      expect(await rotating.reload()).toBe(true);
      const available = () => {
        bus.checkAvailable();
        return true;
      };
      await expect.poll(available, { timeout: 15_000 }).toBe(true);
    } finally {
      await bus.close({ graceMs: 0 }).catch(() => undefined);
      rotating.close();
    }
  });

  it("refuses plaintext NATS beyond loopback before dialling", async () => {
    const err = await connectBus({ natsUrl: "nats://nats.example:4222", explicit: true }).catch(
      (e: unknown) => MeshError.from(e),
    );
    expect(err).toBeInstanceOf(MeshError);
    expect((err as MeshError).code).toBe(Code.FailedPrecondition);
    expect((err as MeshError).message).toMatch(/plaintext NATS .* refused: use tls:\/\//);
  });
});
