/**
 * The operator console in a real browser (Debian's headless Chromium driven
 * by playwright-core), one browser and one mesh for the file: the first-click
 * path (paste a key, submit the prefilled form, open the goal, read its
 * output), a goal followed live and cancelled, 20 fast goals whose rows,
 * plans and steps agree, search and filters, sensitive fields a reader is
 * never sent, and the agents, queues (history from the first paint), policy
 * (decisions by role and tenant) and tenants-and-keys views, each checked
 * with axe-core (no serious or critical violations) and photographed into
 * test-results/.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import AxeBuilder from "@axe-core/playwright";
import { create } from "@bufbuild/protobuf";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StepJobSchema } from "../gen/agentmesh/v1/jobs_pb.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/create-client.js";
import { diamondKind, type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();
const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(executablePath);
if (!haveChromium) {
  const message = `Chromium is not installed at ${executablePath} (apt-get install -y chromium)`;
  if (process.env.CI === "true") throw new Error(message);
  console.warn(`\n!!! ${message}: SKIPPING the dashboard browser test. !!!\n`);
}

describe.skipIf(!pg || !nats || !haveChromium)("operator console in Chromium", () => {
  let f: GatewayFixture;
  let browser: Browser;
  const errors: string[] = [];

  beforeAll(async () => {
    // Sleeping steps long enough that a followed goal is seen running, and cancelled while it runs.
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url, stepMs: 1500 });
    // Two jobs wait for a capability no agent offers: a real queue depth for the console.
    const { bus } = f.mesh.runtime;
    await bus.ensureCapability("report.archive");
    for (const n of [1, 2]) {
      await bus.publishJob(
        create(StepJobSchema, {
          attemptId: `console-test/archive/${n}`,
          goalId: "console-test",
          tenantId: "acme",
          stepId: "archive",
          capability: "report.archive",
          attempt: n,
        }),
      );
    }
    browser = await chromium.launch({
      executablePath,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-quic",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    await mkdir("test-results", { recursive: true });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await f?.close();
    expect(errors).toEqual([]);
  });

  /** A page connected with `key` (as a user pastes it), at `hash`. */
  async function open(key: string, hash = "", viewport = { width: 1366, height: 800 }) {
    // A context per page: axe-core opens its own page in it.
    const page = await (await browser.newContext({ viewport })).newPage();
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      // Refusals the test provokes (403 for a tenant's queue figures, a revoked key) are expected.
      if (m.type() === "error" && !/status of (401|403)/.test(m.text())) errors.push(m.text());
    });
    await page.goto(`${f.url}/${hash}`);
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Connect" }).click();
    await expect.poll(() => page.locator("#status").textContent()).toMatch(/Connected as/);
    return page;
  }

  async function axe(page: Page, name: string): Promise<void> {
    const { violations } = await new AxeBuilder({ page }).analyze();
    const bad = violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map(
        (v) =>
          `${name}: ${v.id} (${v.impact}) ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`,
      );
    expect(bad).toEqual([]);
    await page.screenshot({ path: `test-results/console-${name}.png`, fullPage: true });
  }

  /** How far the page scrolls sideways (in the browser). */
  const sidewaysScroll = () => {
    const d = (
      globalThis as unknown as {
        document: { documentElement: { scrollWidth: number; clientWidth: number } };
      }
    ).document.documentElement;
    return d.scrollWidth - d.clientWidth;
  };

  const submitForm = (page: Page) => page.getByRole("form", { name: "Submit a goal" });

  const stepStates = (page: Page, selector: string) =>
    page.locator(selector).evaluateAll((els) =>
      els
        .map((e) => {
          const d = (e as unknown as { dataset: Record<string, string> }).dataset;
          return `${d.step}:${d.status}`;
        })
        .sort(),
    );

  it("first click: paste the key, submit the prefilled form, open the goal, read its output", async () => {
    const page = await open(f.keys.acmeWriter);
    await axe(page, "goals");
    await page.getByRole("button", { name: "Submit" }).click();
    const link = page.locator(".submitted a");
    await link.waitFor();
    const goalId = ((await link.getAttribute("href")) ?? "").split("/").pop();
    const row = page.locator(`#goals tbody tr[data-goal="${goalId}"]`);
    await expect
      .poll(() => row.locator("td[data-status]").textContent(), { timeout: 20_000 })
      .toBe("succeeded");
    // The row's status may come from the list before the goal's last step events arrive.
    await expect.poll(() => row.locator("td[data-steps]").textContent()).toBe("3/3");
    await link.click();
    await page.locator("#goal-output").waitFor({ timeout: 10_000 });
    const output = JSON.parse((await page.locator("#goal-output").textContent()) ?? "{}").result;
    expect(output.topic).toBe("tides");
    expect(output.keywords.length).toBeGreaterThan(0);
    expect(output.summary).toMatch(/Moon/);
    // The summary ran as a child goal, linked from its step; the history is all there.
    const child = page.locator('#dag [data-step="summary"] a');
    await child.waitFor();
    expect(await page.locator("#events tbody tr").count()).toBeGreaterThanOrEqual(8);
    expect(await page.locator("#events tbody").textContent()).toMatch(/finished.*succeeded/s);
    expect(await page.locator("#goal-status").textContent()).toBe("succeeded");
    await axe(page, "goal");
    const parentId = (await page.locator("#goal-id").textContent()) ?? "";
    await child.click();
    await expect.poll(() => page.locator("#goal-id").textContent()).not.toBe(parentId);
    await expect.poll(() => page.locator("dl").textContent()).toContain("Parent goal");
    // Its parent is one click away.
    await page.locator(`dl a[href="#/goals/${parentId}"]`).click();
    await expect.poll(() => page.locator("#goal-id").textContent()).toBe(parentId);
  }, 60_000);

  it("follows a goal live, shows its plan and attempts, and cancels another", async () => {
    const page = await open(f.keys.acmeWriter);
    await submitForm(page).getByLabel("Kind").fill(diamondKind);
    await submitForm(page).getByLabel("Input (JSON object)").fill("{}");
    await page.getByRole("button", { name: "Submit" }).click();
    await page.locator(".submitted a").click();
    // Live progress: a step is seen running before the goal finishes.
    await page.locator('#dag .step[data-status="running"]').first().waitFor({ timeout: 10_000 });
    await expect
      .poll(() => page.locator("#goal-status").textContent(), { timeout: 20_000 })
      .toBe("succeeded");
    expect(await stepStates(page, "#dag .step")).toEqual([
      "analyze:succeeded",
      "fetch:succeeded",
      "plan:succeeded",
      "report:succeeded",
    ]);
    expect(await page.locator("#dag ol").count()).toBe(3); // plan → fetch, analyze → report
    const attempts = await page.locator("#attempts tbody tr").allTextContents();
    expect(attempts).toHaveLength(4);
    for (const a of attempts) expect(a).toMatch(/succeeded/);
    // Attempts name their agent as people know it: the card's name and the start of its id.
    const utilId = f.mesh.agents.find((a) => a.card.name === "util")?.agentId ?? "";
    expect(await page.locator("#attempts tbody").textContent()).toContain(
      `util (${utilId.slice(0, 8)})`,
    );

    // Another diamond, cancelled from its page while its first step runs.
    await page.goto(`${f.url}/#/goals`);
    await submitForm(page).getByLabel("Kind").fill(diamondKind);
    await submitForm(page).getByLabel("Input (JSON object)").fill("{}");
    await page.getByRole("button", { name: "Submit" }).click();
    await page.locator(".submitted a").click();
    await page.locator('#dag .step[data-status="running"]').first().waitFor({ timeout: 10_000 });
    await page.getByRole("button", { name: "Cancel goal" }).click();
    await expect
      .poll(() => page.locator("#goal-status").textContent(), { timeout: 15_000 })
      .toBe("cancelled");
    expect(await page.getByRole("button", { name: "Cancel goal" }).isDisabled()).toBe(true);
    const goalId = (await page.locator("#goal-id").textContent()) ?? "";

    // A reader sees the goal but may not cancel or resubmit it.
    const reader = await open(f.keys.acmeReader, `#/goals/${goalId}`);
    await expect.poll(() => reader.locator("#goal-status").textContent()).toBe("cancelled");
    expect(await reader.getByRole("button", { name: "Resubmit" }).isDisabled()).toBe(true);
    // The writer resubmits it: a new goal of the same kind and input.
    await page.getByRole("button", { name: "Resubmit" }).click();
    await expect.poll(() => page.locator("#goal-id").textContent()).not.toBe(goalId);
  }, 90_000);

  it("20 fast goals back to back: every row, plan and step list agree at the end", async () => {
    const page = await open(f.keys.acmeWriter, "#/goals?kind=echo");
    await submitForm(page).getByLabel("Kind").fill("echo");
    await submitForm(page).getByLabel("Input (JSON object)").fill('{"message": "hi"}');
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      await page.getByRole("button", { name: "Submit" }).click();
      await expect
        .poll(() => page.locator(".submitted a").getAttribute("href"))
        .not.toBe(ids.length ? `#/goals/${ids[ids.length - 1]}` : null);
      const href = (await page.locator(".submitted a").getAttribute("href")) ?? "";
      ids.push(href.split("/").pop() ?? "");
    }
    expect(new Set(ids).size).toBe(20);
    const mesh = createClient({ baseUrl: f.url, apiKey: f.keys.acmeWriter });
    for (const id of ids) {
      const row = page.locator(`#goals tbody tr[data-goal="${id}"]`);
      await expect
        .poll(() => row.locator("td[data-status]").textContent(), { timeout: 20_000 })
        .toBe("succeeded");
      await expect.poll(() => row.locator("td[data-steps]").textContent()).toBe("1/1");
    }
    await page.screenshot({ path: "test-results/console-race.png", fullPage: true });
    for (const id of ids) {
      await page.goto(`${f.url}/#/goals/${id}`);
      await expect.poll(() => page.locator("#goal-status").textContent()).toBe("succeeded");
      await expect.poll(() => stepStates(page, "#dag .step")).toEqual(["echo:succeeded"]);
      expect(await stepStates(page, "#steps details")).toEqual(["echo:succeeded"]);
      const { goal } = await mesh.executor.getGoal({ goalId: id });
      expect(goal?.steps.map((s) => s.status)).toEqual([4]);
    }
  }, 120_000);

  it("searches by goal id and idempotency key, filters by status and time", async () => {
    const mesh = createClient({ baseUrl: f.url, apiKey: f.keys.acmeWriter });
    const { goal } = await mesh.executor.submitGoal({
      kind: "echo",
      input: { message: "findme", api_key: "s3cret-value" },
      idempotencyKey: "console-search-1",
    });
    const { goal: doomed } = await mesh.executor.submitGoal({ kind: diamondKind });
    await mesh.executor.cancelGoal({ goalId: doomed?.goalId ?? "" });
    const page = await open(f.keys.acmeWriter, "#/goals");
    await page.getByLabel("Goal id or idempotency key").fill("console-search-1");
    await page.getByRole("button", { name: "Apply" }).click();
    await expect.poll(() => page.url()).toContain("q=console-search-1");
    // Until the search answers, the one row may be the list's placeholder.
    await expect
      .poll(() => page.locator("#goals tbody tr").first().getAttribute("data-goal"))
      .toBe(goal?.goalId);
    expect(await page.locator("#goals tbody tr").count()).toBe(1);
    // Its page masks the secret-looking field of its input.
    await page.locator("#goals tbody tr a").first().click();
    await expect.poll(() => page.locator("#goal-input").textContent()).toContain("[REDACTED]");
    expect(await page.locator("body").textContent()).not.toContain("s3cret-value");
    // A reader is sent no sensitive field at all (acme does not encrypt at rest): the server redacts.
    const reader = await open(f.keys.acmeReader, `#/goals/${goal?.goalId}`);
    await expect
      .poll(() => reader.locator("#goal-input").textContent())
      .toContain("[redacted: sensitive]");
    await expect.poll(() => reader.locator("#goal-status").textContent()).toBe("succeeded");
    expect(await reader.locator("body").textContent()).not.toMatch(/findme|s3cret-value/);
    expect(await reader.locator("#redaction-note").textContent()).toMatch(/goals\.write/);
    await axe(reader, "goal-reader");
    const asReader = createClient({ baseUrl: f.url, apiKey: f.keys.acmeReader });
    const seen = JSON.stringify(
      [
        (await asReader.executor.getGoal({ goalId: goal?.goalId ?? "" })).goal,
        (await asReader.executor.listGoals({ idempotencyKey: "console-search-1" })).goals,
      ],
      (_k, v) => (typeof v === "bigint" ? String(v) : v),
    );
    expect(seen).toContain("[redacted: sensitive]");
    expect(seen).not.toMatch(/findme|s3cret-value/);
    await reader.context().close();
    await page.goto(`${f.url}/#/goals?q=${goal?.goalId}`);
    await expect
      .poll(() => page.locator("#goals tbody tr").first().getAttribute("data-goal"))
      .toBe(goal?.goalId);
    // Cancelled goals of the last 15 minutes: those cancelled here, and no succeeded one.
    await page.goto(`${f.url}/#/goals?status=cancelled&since=15m`);
    await expect
      .poll(async () => [
        ...new Set(await page.locator("#goals tbody td[data-status]").allTextContents()),
      ])
      .toEqual(["cancelled"]);
    // Nothing was created in the future.
    const { goals } = await mesh.executor.listGoals({
      createdAfter: { seconds: BigInt(Math.ceil(Date.now() / 1000) + 60), nanos: 0 },
    });
    expect(goals).toEqual([]);
  }, 60_000);

  it("agents: names, versions, heartbeat and in-flight fit a laptop screen", async () => {
    const page = await open(f.keys.acmeWriter, "#/agents");
    await expect.poll(() => page.locator("#agents tbody tr").count()).toBe(3);
    const text = await page.locator("#agents tbody").textContent();
    for (const name of ["util", "text", "data"]) expect(text).toContain(name);
    expect(text).toMatch(/\d+ (s|min) ago/);
    expect(await page.locator("#agents thead").textContent()).toContain("In flight");
    // An agent's reliability (util's, after an echo goal) gets a trend chart once read twice.
    const mesh = createClient({ baseUrl: f.url, apiKey: f.keys.acmeWriter });
    const { goal } = await mesh.executor.submitGoal({ kind: "echo", input: { message: "r" } });
    for await (const _ of mesh.executor.watchGoal({ goalId: goal?.goalId ?? "" })) {
      // until it finishes
    }
    await expect
      .poll(() => page.locator('#agents tr:has-text("util") svg.spark').count(), {
        timeout: 20_000,
      })
      .toBe(1);
    // Nothing overflows the panel at 1366 px.
    const overflow = await page.locator("#agents").evaluate((t) => {
      const el = t as unknown as { scrollWidth: number; parentElement: { clientWidth: number } };
      return el.scrollWidth - el.parentElement.clientWidth;
    });
    expect(overflow).toBeLessThanOrEqual(0);
    await axe(page, "agents");
  }, 30_000);

  it("queues: live figures with charts for an operator, refused for a tenant", async () => {
    const tenant = await open(f.keys.acmeWriter, "#/queues");
    await expect
      .poll(() => tenant.locator("#queues-note").textContent())
      .toMatch(/need the platform\.admin role/);
    // The gateway samples queues from its start (every 5 s, the last 10 min): by now it has a few.
    const history = async () => {
      const res = await fetch(`${f.url}/api/v1/queues`, {
        headers: { authorization: `Bearer ${f.keys.admin}` },
      });
      const body = (await res.json()) as {
        queues: { capability: string; history: { depth: number[] } }[];
      };
      return body.queues.find((q) => q.capability === "report.archive")?.history.depth ?? [];
    };
    await expect.poll(async () => (await history()).length, { timeout: 20_000 }).toBeGreaterThan(1);
    const page = await open(f.keys.admin, "#/queues");
    const row = page.locator('#queues tr[data-capability="report.archive"]');
    // The chart has history the moment the row first appears: no waiting for samples.
    await row.waitFor();
    expect(await row.locator("svg.spark").first().getAttribute("aria-label")).toMatch(
      /: ([2-9]|\d{2,}) samples, latest 2, highest 2$/,
    );
    expect(await row.locator("[data-depth]").textContent()).toBe("2");
    expect(await page.locator("#queues-note").textContent()).toMatch(
      /the last 10 minutes, a sample every 5 s/,
    );
    await axe(page, "queues");
  }, 30_000);

  it("policy: recent decisions and denials with input and reason, filterable, by role and tenant", async () => {
    await fetch(`${f.url}/agentmesh.v1.ExecutorService/SubmitGoal`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${f.keys.acmeReader}` },
      body: JSON.stringify({ kind: diamondKind }),
    });
    const writer = createClient({ baseUrl: f.url, apiKey: f.keys.acmeWriter });
    await writer.executor.submitGoal({
      kind: "echo",
      input: { message: "decision-input-secret", token: "t0ken-value" },
      labels: { team: "console" },
    });
    const page = await open(f.keys.admin, "#/policy");
    const rows = page.locator("#decisions tbody tr");
    const table = page.locator("#decisions tbody");
    const filters = page.getByRole("search", { name: "Filter decisions" });
    // Allowed and denied, each with what the policy read of the call.
    await expect.poll(() => table.textContent()).toMatch(/allowed.*ExecutorService\/SubmitGoal/s);
    await expect.poll(() => table.textContent()).toMatch(/denied.*ExecutorService\/SubmitGoal/s);
    expect(await page.locator("#decisions-source").textContent()).toMatch(
      /this gateway made on public calls.*Calls between services.*decision log/,
    );
    const submitted = rows.filter({ hasText: /"goal_kind":"echo"/ }).first();
    await submitted.waitFor();
    expect(await submitted.textContent()).toMatch(
      /allowed.*acme\/.*"labels":\{"team":"console"\}/s,
    );
    // Goal inputs, sensitive and secret-looking fields never reach the decisions.
    expect(await page.locator("body").textContent()).not.toMatch(/decision-input-secret|t0ken/);
    // Filter by decision (denials are kept apart, so none is pushed out by allowed calls) ...
    await filters.getByLabel("Decision", { exact: true }).selectOption("denied");
    await expect
      .poll(async () => [...new Set(await rows.locator("td:nth-child(2)").allTextContents())])
      .toEqual(["denied"]);
    // ... by caller and by method.
    await filters.getByLabel("Tenant or caller", { exact: true }).fill("no-such-caller");
    await expect.poll(() => table.textContent()).toBe("None.");
    await filters.getByLabel("Tenant or caller", { exact: true }).fill("acme/");
    await filters
      .getByLabel("Method", { exact: true })
      .selectOption("agentmesh.v1.ExecutorService/SubmitGoal");
    await expect.poll(() => table.textContent()).toMatch(/SubmitGoal/);
    await filters.getByLabel("Decision", { exact: true }).selectOption("allowed");
    await expect
      .poll(async () => [...new Set(await rows.locator("td:nth-child(4)").allTextContents())])
      .toEqual(["ExecutorService/SubmitGoal"]);
    expect(await rows.locator("td:nth-child(2)").allTextContents()).not.toContain("denied");
    // The filters are in the link: opened again, the page shows the same.
    await expect.poll(() => page.url()).toMatch(/#\/policy\?decision=allowed&who=acme%2F&method=/);
    const linked = await open(f.keys.admin, `#/policy?decision=denied&who=acme`);
    await expect
      .poll(async () => [
        ...new Set(await linked.locator("#decisions tbody td:nth-child(2)").allTextContents()),
      ])
      .toEqual(["denied"]);
    expect(await linked.getByLabel("Tenant or caller").inputValue()).toBe("acme");
    await linked.context().close();
    await filters.getByLabel("Decision", { exact: true }).selectOption("");
    await page.getByLabel("Tenant", { exact: true }).fill("acme");
    await page.getByLabel("Roles (comma-separated)").fill("goals.read");
    await page.getByLabel("Goal kind (if the method has one)").fill(diamondKind);
    await page.getByRole("button", { name: "Evaluate" }).click();
    await expect.poll(() => page.locator("#try-answer").textContent()).toMatch(/^Denied/);
    await page.getByLabel("Roles (comma-separated)").fill("goals.write");
    await page.getByRole("button", { name: "Evaluate" }).click();
    await expect.poll(() => page.locator("#try-answer").textContent()).toMatch(/^Allowed/);
    await axe(page, "policy");

    // A tenant's key may not try the policy.
    const res = await fetch(
      `${f.url}/api/v1/policy/try?method=agentmesh.v1.ExecutorService/GetGoal&tenant=acme`,
      { headers: { authorization: `Bearer ${f.keys.acmeWriter}` } },
    );
    expect(res.status).toBe(403);

    // A tenant admin reads its own tenant's decisions, not the operator's, nor every tenant's.
    const tenantAdmin = await open(f.keys.acmeAdmin, "#/policy");
    const own = tenantAdmin.locator("#decisions tbody");
    await expect.poll(() => own.textContent()).toMatch(/allowed.*acme\//s);
    expect(await own.textContent()).not.toMatch(/ops\//);
    await axe(tenantAdmin, "policy-tenant-admin");
    const acmeAdmin = createClient({ baseUrl: f.url, apiKey: f.keys.acmeAdmin });
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => "ok",
        (e: { code?: number }) => e.code,
      );
    expect(await codeOf(acmeAdmin.admin.listPolicyDecisions({ allTenants: true }))).toBe(7);
    expect(await codeOf(acmeAdmin.admin.listPolicyDecisions({ tenantId: "globex" }))).toBe(7);
    // A writer sees its tenant's denials, without what the policy read, and may not list decisions.
    const plain = await open(f.keys.acmeWriter, "#/policy");
    await expect
      .poll(() => plain.locator("#decisions-title").textContent())
      .toBe("Recent policy denials");
    await expect.poll(() => plain.locator("#decisions tbody").textContent()).toMatch(/denied/);
    expect(await plain.locator("#decisions thead").textContent()).not.toContain("Input");
    expect(await plain.locator("#decisions tbody").textContent()).not.toMatch(/allowed/);
    await axe(plain, "policy-writer");
    expect(await codeOf(writer.admin.listPolicyDecisions({}))).toBe(7);
    // Pages that keep polling load the (shared, slow) machine for the tests after this one.
    await tenantAdmin.context().close();
    await plain.context().close();
  }, 120_000);

  it("tenants and keys: an operator creates a tenant and a key, then revokes it", async () => {
    const page = await open(f.keys.admin, "#/admin");
    await expect.poll(() => page.locator("#tenants tbody").textContent()).toContain("acme");
    await page.getByLabel("Tenant id").fill("initech");
    await page.getByRole("button", { name: "Create tenant" }).click();
    await expect.poll(() => page.locator("#tenants tbody").textContent()).toContain("initech");
    await page.getByRole("button", { name: "Keys of initech" }).click();
    await expect.poll(() => page.locator("#keys-title").textContent()).toBe("API keys of initech");
    await page.getByLabel("Key name").fill("ci");
    await page.getByRole("button", { name: "Create key" }).click();
    const secret = (await page.locator("#new-secret pre").textContent({ timeout: 10_000 })) ?? "";
    expect(secret).toMatch(/^am_/);
    // The new key works ...
    const user = await open(secret, "#/goals");
    expect(await user.locator("#status").textContent()).toMatch(/initech/);
    await axe(page, "admin");
    // ... until it is revoked.
    await page.locator("#keys tbody button").first().click();
    await expect
      .poll(() => page.locator("#keys tbody td:nth-child(6)").first().textContent())
      .not.toBe("–");
    await expect
      .poll(
        async () =>
          (await fetch(`${f.url}/api/v1/me`, { headers: { authorization: `Bearer ${secret}` } }))
            .status,
      )
      .toBe(401);
    // Suspended, the tenant is shown so, and resumed.
    const status = page.locator('#tenants tr[data-tenant="initech"] td[data-status]');
    await page.getByRole("button", { name: "Suspend tenant initech" }).click();
    await expect.poll(() => status.textContent()).toMatch(/^suspended/);
    await page.getByRole("button", { name: "Resume tenant initech" }).click();
    await expect.poll(() => status.textContent()).toBe("active");
    // Its limits and flags are edited, and stick: the row shows them, and so does a new page.
    await expect
      .poll(() => page.locator("#limits-title").textContent())
      .toBe("Usage and limits of initech");
    await expect
      .poll(() => page.locator("#tenant-usage").textContent())
      .toMatch(/Requests admitted\d+/);
    await page.getByLabel("Open streams").fill("7");
    await page.getByLabel("LLM planner").check();
    await page.getByRole("button", { name: "Save limits" }).click();
    const streams = page.locator('#tenants tr[data-tenant="initech"] td:nth-child(6)');
    await expect.poll(() => streams.textContent()).toBe("7");
    const again = await open(f.keys.admin, "#/admin");
    await again.getByRole("button", { name: "Keys of initech" }).click();
    await expect.poll(() => again.getByLabel("Open streams").inputValue()).toBe("7");
    expect(await again.getByLabel("LLM planner").isChecked()).toBe(true);
    expect((await f.store.tenants.find("initech"))?.maxConcurrentStreams).toBe(7);
    // A tenant admin sees its own tenant's usage, not the editor.
    const tenantAdmin = await open(f.keys.acmeAdmin, "#/admin");
    await expect
      .poll(() => tenantAdmin.locator("#tenant-usage").textContent())
      .toMatch(/Requests admitted\d+/);
    expect(await tenantAdmin.locator("#limits-title").textContent()).toBe("Usage of acme");
    expect(await tenantAdmin.locator("#tenant-limits").count()).toBe(0);
    // A writer has no such view.
    const writer = await open(f.keys.acmeWriter);
    expect(await writer.locator("nav").textContent()).not.toContain("Tenants");
  }, 30_000);

  it("a narrow screen: no sideways scrolling, and the keyboard reaches every view", async () => {
    const mesh = createClient({ baseUrl: f.url, apiKey: f.keys.acmeWriter });
    await mesh.executor.submitGoal({ kind: "echo", input: { message: "narrow" } });
    const page = await open(f.keys.acmeWriter, "#/goals", { width: 390, height: 844 });
    await page.locator("#goals tbody tr[data-goal]").first().waitFor();
    const sideways = await page.evaluate(sidewaysScroll);
    await page.screenshot({ path: "test-results/console-narrow.png", fullPage: true });
    expect(sideways).toBeLessThanOrEqual(0);
    // A goal's page too: its tables scroll inside their panels, the page does not.
    await page.locator("#goals tbody tr[data-goal] a").first().click();
    await page.locator("#events tbody tr").first().waitFor();
    await page.screenshot({ path: "test-results/console-narrow-goal.png", fullPage: true });
    expect(await page.evaluate(sidewaysScroll)).toBeLessThanOrEqual(0);
    // Tab from the top reaches the Agents link; Enter opens it.
    await page.locator("h1").click();
    for (let i = 0; i < 10; i++) {
      await page.keyboard.press("Tab");
      if (
        (await page.evaluate(
          () =>
            (globalThis as unknown as { document: { activeElement: { textContent: string } } })
              .document.activeElement.textContent,
        )) === "Agents"
      )
        break;
    }
    await page.keyboard.press("Enter");
    await expect.poll(() => page.url()).toMatch(/#\/agents$/);
    await page.locator("#agents tbody tr").first().waitFor();
  }, 30_000);
});
