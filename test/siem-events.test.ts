/**
 * The security events the mesh already records reach the SIEM sink, against
 * the real gateway and mesh: a bad API key (Authentication), a policy denial
 * (API Activity) and an admin change (Entity Management), each with its
 * tenant and identity, as OCSF JSON lines in a file sink.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSiemExporter, type SiemExporter } from "../lib/siem/exporter.js";
import { fileSink } from "../lib/siem/file-sink.js";
import { setSiemExporter } from "../lib/siem/siem.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/index.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

/** The OCSF fields the test reads. */
interface OcsfLine {
  class_uid: number;
  metadata: { tenant_uid?: string };
  actor: { user: { name: string } };
  entity: { name: string; type?: string };
}

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("security events to the SIEM sink", () => {
  let f: GatewayFixture;
  let dir: string;
  let exporter: SiemExporter;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentmesh-siem-"));
    exporter = createSiemExporter({ sink: fileSink(join(dir, "siem.jsonl")) });
    setSiemExporter(exporter);
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url });
  }, 60_000);
  afterAll(async () => {
    setSiemExporter(undefined);
    await exporter?.close(1000);
    await f?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const as = (apiKey: string) => createClient({ baseUrl: f.url, apiKey });

  it("reports authentication failures, policy denials and admin actions with tenant and identity", async () => {
    const bad = await as("am_0123456789ab_notthesecret")
      .admin.updateTenant({ tenantId: "acme", canary: true })
      .then(() => undefined, ConnectError.from);
    expect(bad?.code).toBeDefined();
    const denied = await as(f.keys.acmeWriter)
      .admin.updateTenant({ tenantId: "acme", canary: true })
      .then(() => undefined, ConnectError.from);
    expect(denied?.message).toMatch(/denied|not allowed|permission/i);
    await as(f.keys.admin).admin.updateTenant({ tenantId: "globex", canary: true });

    expect(await exporter.flush(5000)).toBe(true);
    const events = (await readFile(join(dir, "siem.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as OcsfLine);
    const auth = events.find((e) => e.class_uid === 3002);
    expect(auth).toMatchObject({
      type_uid: 300201,
      status_id: 2,
      user: { name: "key:0123456789ab" },
    });
    const denial = events.find((e) => e.class_uid === 6003);
    expect(denial).toMatchObject({
      status_id: 2,
      metadata: { tenant_uid: "acme", event_code: "policy.denial" },
      api: { operation: expect.stringContaining("UpdateTenant") },
    });
    expect(denial?.actor.user.name).toMatch(/^acme\//);
    const admin = events.find((e) => e.class_uid === 3004 && e.entity.name === "tenant/globex");
    expect(admin).toMatchObject({
      metadata: { tenant_uid: "globex" },
      entity: { name: "tenant/globex" },
    });
    expect(admin?.entity.type).toMatch(/^admin\.tenant/);
    expect(admin?.actor.user.name).toMatch(/\//);
  }, 30_000);
});
