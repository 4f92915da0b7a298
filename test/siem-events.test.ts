/**
 * The security events the mesh already records reach the SIEM sink, against
 * the real gateway and mesh: a bad API key (Authentication), a policy denial
 * (API Activity) and an admin change (Entity Management), each with its
 * tenant and identity, as OCSF JSON lines in a file sink.
 */
import { ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { captureSiemEvents, type SiemCapture } from "../lib/testing/siem-capture.js";
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
  let siem: SiemCapture;
  beforeAll(async () => {
    siem = await captureSiemEvents();
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url });
  }, 60_000);
  afterAll(async () => {
    await siem?.close();
    await f?.close();
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

    const events = await siem.events<OcsfLine>();
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
