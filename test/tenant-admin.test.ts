/**
 * Tenant administration through the gateway, against the real mesh: a
 * platform admin changes a tenant's limits and feature flags, suspends and
 * resumes it and reads its usage; each change is in the audit log; the
 * limits hold where they belong (goal input and goals in flight at the
 * executor's SubmitGoal, step quotas at dispatch, suspension at the gateway
 * and the executor).
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrincipalSchema } from "../gen/agentmesh/v1/common_pb.js";
import { ExecutorService } from "../gen/agentmesh/v1/executor_pb.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/index.js";
import { diamondKind, type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();

/** The executor reads a tenant's settings again after 2 s (`TenantGate`). */
const executorSettled = () => new Promise((r) => setTimeout(r, 2100));

async function errorOf(p: Promise<unknown>): Promise<ConnectError | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  }
}

describe.skipIf(!pg || !nats)("tenant administration", () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    // Sleeping steps of 1.5 s: a goal stays in flight long enough to count.
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url, stepMs: 1500 });
  }, 60_000);
  afterAll(() => f?.close());

  const as = (apiKey: string) => createClient({ baseUrl: f.url, apiKey });
  const audited = async (tenantId: string, action: string) =>
    (await f.store.audit.list({ tenantId, limit: 1000 })).filter((e) => e.action === action);

  it("changes limits and flags, shows them back, audits the change, and only for platform admins", async () => {
    const admin = as(f.keys.admin);
    const { tenant } = await admin.admin.updateTenant({
      tenantId: "globex",
      rateLimitPerSecond: 500,
      maxConcurrentGoals: 3,
      maxGoalInputBytes: 4096,
      stepQuotas: { "util.echo": 600, "text.*": 120 },
      learningSelector: "ucb1",
      llmPlanner: false,
      canary: false,
    });
    expect(tenant).toMatchObject({
      tenantId: "globex",
      rateLimitPerSecond: 500,
      maxConcurrentGoals: 3,
      maxGoalInputBytes: 4096,
      stepQuotas: { "util.echo": 600, "text.*": 120 },
      features: { learningSelector: "ucb1", llmPlanner: false, canary: false },
    });
    // The flags are the mesh's feature flags, scoped to the tenant.
    expect((await f.store.flags.resolve("planner.llm", { tenantId: "globex" }))?.value).toBe(
      "false",
    );
    expect((await f.store.flags.resolve("planner.llm", { tenantId: "acme" }))?.value).not.toBe(
      "false",
    );
    // A quota of 0 removes it; other fields keep their values.
    const { tenant: after } = await admin.admin.updateTenant({
      tenantId: "globex",
      stepQuotas: { "text.*": 0 },
      canary: true,
    });
    expect(after?.stepQuotas).toEqual({ "util.echo": 600 });
    expect(after?.maxConcurrentGoals).toBe(3);
    expect(after?.features?.canary).toBe(true);
    const { tenant: read } = await admin.admin.getTenant({ tenantId: "globex" });
    expect(read?.features?.learningSelector).toBe("ucb1");

    const updates = await audited("globex", "admin.tenant.updated");
    expect(updates).toHaveLength(2);
    expect(updates[0]?.actor).toMatch(/^ops\//);
    expect(updates[0]?.details).toMatchObject({ maxConcurrentGoals: 3, llmPlanner: false });

    // Bad input changes nothing.
    const bad = await errorOf(
      admin.admin.updateTenant({
        tenantId: "globex",
        learningSelector: "astrology",
        rateLimitPerSecond: 1,
      }),
    );
    expect(bad?.code).toBe(Code.InvalidArgument);
    expect(bad?.rawMessage).toMatch(/unknown selector "astrology"/);
    expect((await admin.admin.getTenant({ tenantId: "globex" })).tenant?.rateLimitPerSecond).toBe(
      500,
    );
    expect(
      (
        await errorOf(
          admin.admin.updateTenant({ tenantId: "globex", stepQuotas: { "Bad Cap": 1 } }),
        )
      )?.code,
    ).toBe(Code.InvalidArgument);
    expect(
      (await errorOf(admin.admin.updateTenant({ tenantId: "nobody-here", maxConcurrentGoals: 1 })))
        ?.code,
    ).toBe(Code.NotFound);
    expect(await audited("globex", "admin.tenant.updated")).toHaveLength(2);

    // A tenant admin may read its usage but not change its limits.
    expect(
      (
        await errorOf(
          as(f.keys.acmeAdmin).admin.updateTenant({ tenantId: "acme", rateLimitPerSecond: 1e6 }),
        )
      )?.code,
    ).toBe(Code.PermissionDenied);
    await as(f.keys.acmeAdmin).admin.getTenantUsage({ tenantId: "acme" });
  });

  it("holds the largest goal input and the goals in flight at SubmitGoal", async () => {
    const admin = as(f.keys.admin);
    await admin.admin.updateTenant({
      tenantId: "acme",
      maxConcurrentGoals: 2,
      maxGoalInputBytes: 1000,
    });
    const acme = as(f.keys.acmeWriter);
    const big = await errorOf(
      acme.executor.submitGoal({ kind: diamondKind, input: { text: "x".repeat(2000) } }),
    );
    expect(big?.code).toBe(Code.ResourceExhausted);
    expect(big?.rawMessage).toMatch(/goal input is \d+ bytes; tenant acme may submit at most 1000/);

    const running = await Promise.all([
      acme.executor.submitGoal({ kind: diamondKind }),
      acme.executor.submitGoal({ kind: diamondKind }),
    ]);
    const third = await errorOf(acme.executor.submitGoal({ kind: diamondKind }));
    expect(third?.code).toBe(Code.ResourceExhausted);
    expect(third?.rawMessage).toMatch(/tenant acme has 2 goals in flight, the most it may have/);
    // Another tenant is not affected.
    await as(f.keys.globexWriter).executor.submitGoal({ kind: diamondKind });
    // A slot frees when a goal finishes.
    await acme.executor.cancelGoal({ goalId: running[0].goal!.goalId });
    await acme.executor.submitGoal({ kind: diamondKind });

    const { usage } = await admin.admin.getTenantUsage({ tenantId: "acme" });
    expect(usage?.goalsInFlight).toBe(2n);
    expect(usage?.goalsByStatus.CANCELLED).toBeGreaterThanOrEqual(1n);
    expect(usage?.requestsAdmitted).toBeGreaterThan(5n);
    await admin.admin.updateTenant({
      tenantId: "acme",
      maxConcurrentGoals: 0,
      maxGoalInputBytes: 0,
    });
    for (const { goal } of running) await acme.executor.cancelGoal({ goalId: goal!.goalId });
  });

  it("holds a step quota at dispatch: the step over it fails its attempt with RESOURCE_EXHAUSTED", async () => {
    const admin = as(f.keys.admin);
    // Two util.sleep dispatches a minute: a diamond needs three.
    await admin.admin.updateTenant({
      tenantId: "globex",
      stepQuotas: { "util.*": 2 },
      maxConcurrentGoals: 0,
    });
    const globex = as(f.keys.globexWriter);
    await executorSettled();
    const { goal } = await globex.executor.submitGoal({ kind: diamondKind });
    let failure: { code: string; message: string; retryable: boolean } | undefined;
    for await (const { event } of globex.executor.watchGoal({ goalId: goal!.goalId })) {
      if (event?.kind.case === "stepFailed") {
        failure = event.kind.value.error as typeof failure;
        break;
      }
    }
    expect(failure).toMatchObject({
      code: "RESOURCE_EXHAUSTED",
      retryable: true,
      message: "tenant globex is over its quota of 2 util.* steps a minute",
    });
    await globex.executor.cancelGoal({ goalId: goal!.goalId });
    await admin.admin.updateTenant({ tenantId: "globex", stepQuotas: { "util.*": 0 } });
  });

  it("suspends and resumes a tenant, audited; a suspended tenant's calls say so", async () => {
    const admin = as(f.keys.admin);
    const globex = as(f.keys.globexWriter);
    await globex.executor.listGoals({});
    const { tenant } = await admin.admin.suspendTenant({
      tenantId: "globex",
      reason: "unpaid invoice",
    });
    expect(tenant?.suspendedAt).toBeDefined();
    expect(tenant?.suspendedReason).toBe("unpaid invoice");
    const refused = await errorOf(globex.executor.listGoals({}));
    expect(refused?.code).toBe(Code.FailedPrecondition);
    expect(refused?.rawMessage).toBe("tenant globex is suspended");
    // The executor refuses its submissions too (a caller that skips the gateway, another replica's lag).
    const executor = await f.mesh.clientAs(ExecutorService, "executor", "gateway");
    await executorSettled();
    const direct = await errorOf(
      executor.submitGoal(
        { tenantId: "globex", kind: diamondKind },
        {
          principal: create(PrincipalSchema, {
            tenantId: "globex",
            subject: "direct",
            roles: ["goals.write"],
          }),
        },
      ),
    );
    expect(direct?.rawMessage ?? "").toMatch(/tenant globex is suspended/);
    // Nobody suspends their own tenant.
    expect((await errorOf(admin.admin.suspendTenant({ tenantId: "ops" })))?.code).toBe(
      Code.FailedPrecondition,
    );
    await admin.admin.resumeTenant({ tenantId: "globex" });
    await globex.executor.listGoals({});
    expect(await audited("globex", "admin.tenant.suspended")).toHaveLength(1);
    expect((await audited("globex", "admin.tenant.suspended"))[0]?.details).toEqual({
      reason: "unpaid invoice",
    });
    expect(await audited("globex", "admin.tenant.resumed")).toHaveLength(1);
  });
});
