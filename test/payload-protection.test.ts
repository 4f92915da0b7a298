/**
 * Sensitive fields through the real mesh and gateway for a tenant with
 * encryption at rest: stored sealed in PostgreSQL, in clear for a principal
 * the policy lets write the tenant's goals, redacted for a read-only one,
 * and every read audited (who, tenant, goal, fields).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { redactedText } from "../lib/proto/sensitive-fields.js";
import { setTenantEncryption } from "../lib/store/tenant-keys.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/index.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();
const secret = "patient 4711, SSN 123-45-6789";
const text = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? String(x) : x));

describe.skipIf(!pg || !nats)("sensitive fields of an encrypting tenant", () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url });
    await setTenantEncryption(f.store, "acme", "sensitive", "ops/test");
  });
  afterAll(() => f?.close());
  const as = (apiKey: string) => createClient({ baseUrl: f.url, apiKey });

  it("are sealed at rest, clear to a goal writer, redacted to a reader, and each read is audited", async () => {
    const writer = as(f.keys.acmeWriter);
    const { goal } = await writer.executor.submitGoal({ kind: "echo", input: { message: secret } });
    const goalId = goal!.goalId;
    await expect
      .poll(async () => (await writer.executor.getGoal({ goalId })).goal?.status, {
        timeout: 15_000,
      })
      .toBe(GoalStatus.SUCCEEDED);

    const rows = await f.store.orm.em
      .fork()
      .execute<{ input: string; output: string }[]>(
        "select input::text as input, output::text as output from goals where id = ?",
        [goalId],
      );
    expect(rows[0]?.input).toContain('"$sealed"');
    expect(rows[0]?.input).not.toContain("123-45-6789");
    expect(rows[0]?.output).not.toContain("123-45-6789");

    const clear = (await writer.executor.getGoal({ goalId })).goal!;
    expect(clear.input).toEqual({ message: secret });
    expect(text(clear.output)).toContain("123-45-6789");

    const reader = as(f.keys.acmeReader);
    const hidden = (await reader.executor.getGoal({ goalId })).goal!;
    expect(hidden.input).toEqual({ redacted: redactedText });
    expect(hidden.output?.kind).toEqual({ case: "stringValue", value: redactedText });
    expect(text(hidden)).not.toContain("123-45-6789");
    const listed = (await reader.executor.listGoals({})).goals.find((g) => g.goalId === goalId);
    expect(text(listed)).not.toContain("123-45-6789");
    for await (const { event } of reader.executor.watchGoal({ goalId })) {
      expect(text(event)).not.toContain("123-45-6789");
      if (event?.kind.case === "finished") break;
    }

    const audit = await f.store.audit.list({ limit: 1000 });
    const reads = audit.filter((a) => a.action.startsWith("payload.") && a.tenantId === "acme");
    expect(reads.map((a) => a.action)).toEqual(
      expect.arrayContaining(["payload.read", "payload.redacted"]),
    );
    const redacted = reads.find(
      (a) => a.action === "payload.redacted" && a.resource === `goal/${goalId}`,
    );
    expect(redacted?.actor).toMatch(/^acme\//);
    expect(redacted?.details).toMatchObject({ goals: [goalId], method: "GetGoal" });
    expect((redacted?.details as { fields?: string[] } | undefined)?.fields).toEqual(
      expect.arrayContaining(["input", "output"]),
    );
  });
});
