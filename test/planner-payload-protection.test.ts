// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step templates
/**
 * The planner's reads through the real mesh and gateway, as a user makes
 * them: a playbook's step inputs (sensitive in the contract) reach a
 * principal the policy lets submit the tenant's goals in clear and a
 * read-only one redacted, in ListPlaybooks, GetPlaybook and ExplainPlan;
 * for an encrypting tenant each read is audited like the executor's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redactedText } from "../lib/proto/sensitive-fields.js";
import { setTenantEncryption } from "../lib/store/tenant-keys.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/index.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();
const secret = "sk-live-4711-do-not-show";
const kind = "lookup";
const text = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? String(x) : x));

/** A playbook whose one step carries a literal credential beside the caller's input. */
const lookupPlaybook = {
  goalKind: kind,
  description: "echoes a lookup",
  strategies: [
    {
      name: "solo",
      steps: [
        {
          stepId: "ask",
          name: "ask",
          capability: "util.echo",
          input: { message: "${input.who}", token: secret },
        },
      ],
    },
  ],
};

describe.skipIf(!pg || !nats)("the planner's step inputs", () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url });
    await as(f.keys.acmeAdmin).planner.putPlaybook({ playbook: lookupPlaybook });
  }, 180_000);
  afterAll(() => f?.close());
  const as = (apiKey: string) => createClient({ baseUrl: f.url, apiKey });

  /** The step input each read shows `apiKey` for tenant `tenantId`. */
  const reads = async (apiKey: string, tenantId = "") => {
    const planner = as(apiKey).planner;
    const listed = (await planner.listPlaybooks({ tenantId })).playbooks.find(
      (p) => p.goalKind === kind,
    );
    const got = (await planner.getPlaybook({ tenantId, goalKind: kind })).playbook;
    const explained = await planner.explainPlan({ tenantId, goalKind: kind, input: { who: "me" } });
    return {
      list: listed?.strategies[0]?.steps[0]?.input,
      get: got?.strategies[0]?.steps[0]?.input,
      explain: explained.plan?.steps[0]?.input,
    };
  };

  it("are clear to a goal writer and a platform admin and redacted to a reader (encryption off)", async () => {
    const clear = { message: "${input.who}", token: secret };
    expect(await reads(f.keys.acmeWriter)).toEqual({
      list: clear,
      get: clear,
      explain: { message: "me", token: secret },
    });
    expect((await reads(f.keys.admin, "acme")).get).toEqual(clear);

    const hidden = { redacted: redactedText };
    expect(await reads(f.keys.acmeReader)).toEqual({ list: hidden, get: hidden, explain: hidden });
    // Nothing else of the reader's answers carries it (the built-in playbooks included).
    const reader = as(f.keys.acmeReader).planner;
    expect(text(await reader.listPlaybooks({}))).not.toContain(secret);
    // The reader's redacted copy of the cached list is kept apart: a writer still reads it clear.
    expect((await reads(f.keys.acmeWriter)).list).toEqual(clear);

    // A tenant that does not encrypt is not audited for these reads (as the executor's).
    const audit = await f.store.audit.list({ limit: 1000 });
    expect(audit.filter((a) => a.action.startsWith("payload.") && a.tenantId === "acme")).toEqual(
      [],
    );
  });

  it("of an encrypting tenant are audited on every read, clear or redacted", async () => {
    await setTenantEncryption(f.store, "globex", "sensitive", "ops/test");
    const globexAdmin = await f.key("globex", ["tenant.admin"]);
    const globexReader = await f.key("globex", ["goals.read"]);
    await as(globexAdmin).planner.putPlaybook({ playbook: lookupPlaybook });

    expect((await reads(f.keys.globexWriter)).get).toEqual({
      message: "${input.who}",
      token: secret,
    });
    expect(text(await reads(globexReader))).not.toContain(secret);

    const audit = await f.store.audit.list({ limit: 1000 });
    const payload = audit.filter((a) => a.action.startsWith("payload.") && a.tenantId === "globex");
    const byMethod = (action: string, method: string) =>
      payload.filter(
        (a) => a.action === action && (a.details as { method?: string }).method === method,
      );
    for (const method of ["ListPlaybooks", "GetPlaybook", "ExplainPlan"]) {
      expect(byMethod("payload.read", method).length, method).toBeGreaterThan(0);
      expect(byMethod("payload.redacted", method).length, method).toBeGreaterThan(0);
    }
    const got = byMethod("payload.redacted", "GetPlaybook")[0];
    expect(got?.resource).toBe(`playbook/${kind}`);
    expect(got?.actor).toMatch(/^globex\//);
    expect(got?.details).toMatchObject({
      playbooks: [kind],
      fields: ["strategies[].steps[].input"],
    });
    const explained = byMethod("payload.redacted", "ExplainPlan")[0];
    expect(explained?.details).toMatchObject({ fields: ["plan.steps[].input"] });
  });
});
