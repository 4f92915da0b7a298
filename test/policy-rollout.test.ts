/**
 * The policy a security team extends and rolls out, end to end through the
 * gateway against the real mesh (real mTLS, PostgreSQL, NATS, the compiled
 * bundle): extension rules built with `opa` into a bundle, swapped in while
 * the mesh runs; a capability denied at dispatch and when a playbook is
 * stored; a rule on the principal a goal acts for, child goals included; a
 * rule on goal kind; a bundle that fails at evaluation time
 * rejected on reload with its error text; shadow mode reporting what a
 * candidate would change, through `agentmesh policy shadow`.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalStatus, StepStatus } from "../gen/agentmesh/v1/common_pb.js";
import { compileBundle } from "../lib/policy/build.js";
import { committedBundlePath, findOpa, scratchPolicies } from "../lib/policy/testing.js";
import { parseApiKey } from "../lib/store/api-key-secret.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/index.js";
import { diamondKind, type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();
const opa = findOpa();

/** acme may not use util.sleep: asked at dispatch only, so the planner's PutPlaybook check is what refuses a playbook. */
const noSleepForAcme = `package agentmesh.ext.no_sleep_for_acme

import data.agentmesh.authz

deny contains msg if {
	input.method.full == "agentmesh.v1.ExecutorService/DispatchStep"
	authz.acting_tenant == "acme"
	authz.uses_capability("util.sleep")
	msg := "tenant acme may not use util.sleep"
}
`;

/** A rule on goal kind: globex may not submit diamonds. */
const noDiamondsForGlobex = `package agentmesh.ext.no_diamonds_for_globex

import data.agentmesh.authz

deny contains "goals of kind diamond are frozen for tenant globex" if {
	input.method.full == "agentmesh.v1.ExecutorService/SubmitGoal"
	input.resource.goal_kind == "diamond"
	authz.acting_tenant == "globex"
}
`;

/** A rule on who a goal acts for, at dispatch: this principal's goals may not summarize. */
const noSummariesFor = (subject: string) => `package agentmesh.ext.no_summaries_for_one_key

import data.agentmesh.authz

deny contains msg if {
	input.method.full == "agentmesh.v1.ExecutorService/DispatchStep"
	input.principal.subject == ${JSON.stringify(subject)}
	authz.uses_capability("text.summarize")
	msg := concat("", [input.principal.subject, " may not summarize"])
}
`;

/** What an OPA-Envoy author writes first: a second `decision`, conflicting for globex. */
const secondDecision = `package agentmesh.authz

decision := {"allow": false, "reason": "globex is frozen", "principal_trusted": false} if {
	input.principal.tenant_id == "globex"
}
`;

describe.skipIf(!pg || !nats || !opa)("policy rollout through the gateway", () => {
  let f: GatewayFixture;
  let dir: string;
  let live: string;
  const bundles: Record<"noSleep" | "noDiamonds" | "frozen", Buffer> = {} as never;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentmesh-policy-rollout-"));
    const build = async (name: string, files: Record<string, string>) =>
      (await compileBundle({ dir: await scratchPolicies(join(dir, name), files), opa })).archive;
    bundles.noSleep = await build("no-sleep", { "ext/no_sleep_for_acme.rego": noSleepForAcme });
    bundles.noDiamonds = await build("no-diamonds", {
      "ext/no_diamonds_for_globex.rego": noDiamondsForGlobex,
    });
    bundles.frozen = await build("frozen", { "authz/frozen.rego": secondDecision });
    live = join(dir, "bundles", "agentmesh.tar.gz");
    await mkdir(join(dir, "bundles"));
    await copyFile(committedBundlePath, live);
    f = await startGatewayFixture({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      meshEnv: { AGENTMESH_POLICY: live },
    });
  }, 120_000);
  afterAll(async () => {
    await f?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const as = (apiKey: string) => createClient({ baseUrl: f.url, apiKey });
  const engine = () => f.mesh.runtime.policy;

  /** Installs a bundle the way a deploy does (write beside, rename over) and waits for the reload. */
  async function install(path: string, bytes: Buffer): Promise<boolean> {
    await writeFile(`${path}.next`, bytes);
    await rename(`${path}.next`, path);
    return engine().reload();
  }

  async function finished(apiKey: string, goalId: string) {
    const client = as(apiKey);
    for (let i = 0; i < 300; i++) {
      const { goal } = await client.executor.getGoal({ goalId });
      if (
        goal &&
        [GoalStatus.SUCCEEDED, GoalStatus.FAILED, GoalStatus.CANCELLED].includes(goal.status)
      ) {
        return goal;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`goal ${goalId} did not finish`);
  }

  it("a tenant denied a capability cannot get a step using it executed, nor store a playbook using it", async () => {
    const before = engine().revision;
    expect(await install(live, bundles.noSleep)).toBe(true);
    expect(engine().revision).not.toBe(before);

    const { goal } = await as(f.keys.acmeWriter).executor.submitGoal({ kind: diamondKind });
    const done = await finished(f.keys.acmeWriter, goal!.goalId);
    expect(done.status).toBe(GoalStatus.FAILED);
    expect(done.error?.code).toBe("PERMISSION_DENIED");
    expect(done.error?.message).toContain("tenant acme may not use util.sleep");
    // The first step failed without an agent ever running it; nothing after it started.
    const plan = done.steps.find((s) => s.stepId === "plan")!;
    expect(plan.status).toBe(StepStatus.FAILED);
    expect(plan.agentIds).toEqual([]);
    expect(
      done.steps.filter((s) => s.stepId !== "plan").map((s) => s.status === StepStatus.SUCCEEDED),
    ).toEqual([false, false, false]);
    const audit = await f.store.audit.list({ limit: 1000 });
    expect(audit).toContainEqual(
      expect.objectContaining({
        action: "policy.denied",
        resource: "/agentmesh.v1.ExecutorService/DispatchStep",
        tenantId: "acme",
        details: expect.objectContaining({
          reason: "tenant acme may not use util.sleep",
          goalId: goal!.goalId,
          capability: "util.sleep",
        }),
      }),
    );

    // Another tenant's identical goal runs.
    const other = await as(f.keys.globexWriter).executor.submitGoal({ kind: diamondKind });
    expect((await finished(f.keys.globexWriter, other.goal!.goalId)).status).toBe(
      GoalStatus.SUCCEEDED,
    );

    // The planner refuses to store an acme playbook that could never run, naming the capability.
    const err = await as(f.keys.acmeAdmin)
      .planner.putPlaybook({
        tenantId: "acme",
        playbook: {
          goalKind: "naps",
          strategies: [
            {
              name: "solo",
              steps: [{ stepId: "nap", name: "nap", capability: "util.sleep", input: { ms: 1 } }],
            },
          ],
        },
      })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect((err as ConnectError).rawMessage).toBe(
      'playbook naps: step "nap" (strategy solo) may not use capability util.sleep: tenant acme may not use util.sleep',
    );
  });

  it("a rule on the submitting principal denies its steps at dispatch, in child goals too", async () => {
    const blocked = await f.key("acme", ["goals.write"]);
    const subject = `key:${parseApiKey(blocked)!.keyId}`;
    const bundle = await compileBundle({
      dir: await scratchPolicies(join(dir, "no-summaries"), {
        "ext/no_summaries_for_one_key.rego": noSummariesFor(subject),
      }),
      opa: opa!,
    });
    expect(await install(live, bundle.archive)).toBe(true);
    const text = "Agents run steps. The executor merges results. Policies decide.";

    // research: keywords, then summarize as a child goal (the denied step), then a report.
    const { goal } = await as(blocked).executor.submitGoal({ kind: "research", input: { text } });
    const stored = await f.store.tenant("acme").goals.get(goal!.goalId);
    expect(stored.submittedBy).toBe(`acme/${subject}`);
    const done = await finished(blocked, goal!.goalId);
    expect(done.status).toBe(GoalStatus.FAILED);
    expect(done.steps.find((s) => s.stepId === "keywords")?.status).toBe(StepStatus.SUCCEEDED);
    const children = await f.store.tenant("acme").goals.list({ parentGoalId: goal!.goalId });
    expect(children.goals.map((c) => [c.kind, c.status, c.submittedBy])).toEqual([
      ["summarize", "FAILED", `acme/${subject}`],
    ]);
    expect(children.goals[0]?.error).toMatchObject({
      code: "PERMISSION_DENIED",
      message: expect.stringContaining(`${subject} may not summarize`),
    });
    const audit = await f.store.audit.list({ limit: 1000 });
    expect(audit).toContainEqual(
      expect.objectContaining({
        action: "policy.denied",
        resource: "/agentmesh.v1.ExecutorService/DispatchStep",
        details: expect.objectContaining({
          reason: `${subject} may not summarize`,
          goalId: children.goals[0]?.id,
          capability: "text.summarize",
        }),
      }),
    );

    // The same goal of another principal of the same tenant runs.
    const other = await as(f.keys.acmeWriter).executor.submitGoal({
      kind: "research",
      input: { text },
    });
    expect((await finished(f.keys.acmeWriter, other.goal!.goalId)).status).toBe(
      GoalStatus.SUCCEEDED,
    );
  });

  it("a rule on goal kind denies the submission with the rule's message", async () => {
    expect(await install(live, bundles.noDiamonds)).toBe(true);
    const err = await as(f.keys.globexWriter)
      .executor.submitGoal({ kind: diamondKind })
      .catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect((err as ConnectError).rawMessage).toBe(
      "goals of kind diamond are frozen for tenant globex",
    );
    // Other kinds and other tenants are unaffected.
    const echo = await as(f.keys.globexWriter).executor.submitGoal({
      kind: "echo",
      input: { message: "hi" },
    });
    expect(echo.goal?.goalId).toBeTruthy();
    const acme = await as(f.keys.acmeWriter).executor.submitGoal({ kind: diamondKind });
    expect((await finished(f.keys.acmeWriter, acme.goal!.goalId)).status).toBe(
      GoalStatus.SUCCEEDED,
    );
  });

  it("a bundle with an evaluation-time error is rejected on reload with the error text; the last good one serves", async () => {
    const serving = engine().revision;
    expect(await install(live, bundles.frozen)).toBe(false);
    expect(engine().revision).toBe(serving);
    const text =
      /policy fails to evaluate: policies\/authz\/frozen\.rego:3:1: var assignment conflict/;
    expect(engine().status().lastError).toMatch(text);
    const ready = await fetch(`${f.mesh.runtime.http!.url}/readyz`);
    const body = await ready.text();
    expect(ready.status).toBe(200);
    expect(body).toMatch(/policy: last reload rejected: invalid policy bundle: /);
    expect(body).toMatch(text);
    const metrics = await (await fetch(`${f.mesh.runtime.http!.url}/metrics`)).text();
    expect(metrics).toMatch(/agentmesh_policy_last_reload_error 1/);
    // globex still works under the last good bundle (its rule on diamonds included).
    const { goals } = await as(f.keys.globexWriter).executor.listGoals({});
    expect(goals.length).toBeGreaterThan(0);
  });

  it("shadow mode reports, through agentmesh policy shadow, every decision a candidate would change", async () => {
    // Live: the committed bundle. Candidate: the rule on diamonds.
    expect(await install(live, await readFile(committedBundlePath))).toBe(true);
    const env = {
      ...process.env,
      AGENTMESH_POLICY: live,
      AGENTMESH_LOG_DIR: f.mesh.config.logDir,
      LOG_LEVEL: "silent",
    };
    const cli = (...args: string[]) =>
      promisify(execFile)(process.execPath, [resolve("bin/agentmesh.js"), ...args], { env }).catch(
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
    await writeFile(join(dir, "candidate-src.tar.gz"), bundles.noDiamonds);
    const started = await cli("policy", "shadow", "start", join(dir, "candidate-src.tar.gz"));
    expect(JSON.parse(started.stdout)).toMatchObject({
      path: join(dir, "bundles", "candidate.tar.gz"),
    });
    await engine().reload();
    const candidate = engine().candidateRevision;
    expect(candidate).toBeDefined();

    // Real traffic: globex's diamond runs (live allows), and the candidate would deny it.
    const { goal } = await as(f.keys.globexWriter).executor.submitGoal({ kind: diamondKind });
    expect((await finished(f.keys.globexWriter, goal!.goalId)).status).toBe(GoalStatus.SUCCEEDED);
    await as(f.keys.acmeWriter).executor.listGoals({}); // unchanged by the candidate

    let report:
      | {
          candidate: string;
          changes: {
            method: string;
            caller: string;
            count: number;
            live: { allow: boolean };
            candidate: { allow: boolean; reason: string };
          }[];
        }
      | undefined;
    for (let i = 0; i < 50 && !report?.changes.length; i++) {
      const out = await cli("policy", "shadow", "--json");
      report = JSON.parse(out.stdout);
      if (!report?.changes.length) await new Promise((r) => setTimeout(r, 100));
    }
    expect(report!.candidate).toBe(candidate);
    expect(report!.changes).toEqual([
      expect.objectContaining({
        method: "agentmesh.v1.ExecutorService/SubmitGoal",
        caller: expect.stringMatching(/^(gateway|executor) for globex\//),
        live: expect.objectContaining({ allow: true }),
        candidate: {
          allow: false,
          reason: "goals of kind diamond are frozen for tenant globex",
        },
      }),
    ]);
    const human = await cli("policy", "shadow");
    expect("code" in human && human.code).toBe(3);
    expect(human.stdout).toContain("1 decision(s) would change");
    expect(human.stdout).toContain(
      "candidate: DENY (goals of kind diamond are frozen for tenant globex)",
    );

    // Promote: the candidate becomes the live bundle in one rename, and now decides.
    const promoted = await cli("policy", "shadow", "promote");
    expect(JSON.parse(promoted.stdout)).toEqual({ live: candidate, path: live });
    expect(await engine().reload()).toBe(true);
    expect(engine().status()).toMatchObject({ revision: candidate, candidate: undefined });
    const err = await as(f.keys.globexWriter)
      .executor.submitGoal({ kind: diamondKind })
      .catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);

    // Stop drops a candidate without touching the live bundle.
    await cli("policy", "shadow", "start", committedBundlePath);
    await engine().reload();
    expect(engine().candidateRevision).toBeDefined();
    await cli("policy", "shadow", "stop");
    await engine().reload();
    expect(engine().status()).toMatchObject({ revision: candidate, candidate: undefined });
  });
});
