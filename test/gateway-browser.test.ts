/**
 * The dashboard in a real browser (Debian's headless Chromium driven by
 * playwright-core): connect with an API key, submit a goal, watch it finish
 * live through WatchGoal, see its DAG, the agents, and a policy denial.
 * A screenshot goes to test-results/.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StepJobSchema } from "../gen/agentmesh/v1/jobs_pb.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
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

describe.skipIf(!pg || !nats || !haveChromium)("dashboard in Chromium", () => {
  let f: GatewayFixture;
  let browser: Browser;
  beforeAll(async () => {
    // Steps long enough that one is still running when a loaded machine's page starts watching.
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url, stepMs: 2000 });
    // Two jobs wait for a capability no agent offers: a real queue depth for the dashboard.
    const { bus } = f.mesh.runtime;
    await bus.ensureCapability("report.archive");
    for (const n of [1, 2]) {
      await bus.publishJob(
        create(StepJobSchema, {
          attemptId: `dashboard-test/archive/${n}`,
          goalId: "dashboard-test",
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
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await f?.close();
  });

  it("submits a goal, shows it finishing live, its DAG and the agents", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      // The refused queue figures (a tenant key is no operator) are expected.
      if (m.type() === "error" && !/status of 403/.test(m.text())) errors.push(m.text());
    });
    // A denial first, so the dashboard has one to show.
    await fetch(`${f.url}/agentmesh.v1.ExecutorService/SubmitGoal`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${f.keys.acmeReader}` },
      body: JSON.stringify({ kind: diamondKind }),
    });
    await page.goto(f.url);
    await page.getByLabel("API key").fill(f.keys.acmeWriter);
    await page.getByRole("button", { name: "Connect" }).click();
    await expect.poll(() => page.locator("#status").textContent()).toMatch(/Connected/);

    await page.getByLabel("Kind").fill(diamondKind);
    await page.getByRole("button", { name: "Submit" }).click();
    // Live progress: a step is seen running before the goal finishes.
    await page.locator('#dag .step[data-status="running"]').first().waitFor({ timeout: 10_000 });
    await page.locator("#goals tbody td.status-succeeded").first().waitFor({ timeout: 20_000 });
    const steps = await page
      .locator("#dag .step")
      .evaluateAll((els) =>
        els.map(
          (e) =>
            `${(e as unknown as { dataset: { step: string; status: string } }).dataset.step}:${(e as unknown as { dataset: { status: string } }).dataset.status}`,
        ),
      );
    expect(steps.sort()).toEqual([
      "analyze:succeeded",
      "fetch:succeeded",
      "plan:succeeded",
      "report:succeeded",
    ]);
    expect(await page.locator("#dag ol").count()).toBe(3); // plan → fetch, analyze → report

    await expect.poll(() => page.locator("#agents tbody tr").count()).toBe(3);
    const utilId = f.mesh.agents.find((a) => a.card.name === "util")?.agentId;
    expect(await page.locator("#agents tbody").textContent()).toContain(utilId);
    await expect.poll(() => page.locator("#denials").textContent()).toMatch(/SubmitGoal/);
    // Queue figures are mesh-wide: a tenant's key is told they need the operator role ...
    await expect
      .poll(() => page.locator("#queues tbody").textContent())
      .toMatch(/need the platform\.admin role/);
    // ... which an operator's key holds.
    const operator = await browser.newPage();
    await operator.goto(f.url);
    await operator.getByLabel("API key").fill(f.keys.admin);
    await operator.getByRole("button", { name: "Connect" }).click();
    await expect
      .poll(() => operator.locator("#queues tbody").textContent())
      .toMatch(/report\.archive\s*2/);
    await operator.close();

    await mkdir("test-results", { recursive: true });
    await page.screenshot({ path: "test-results/dashboard.png", fullPage: true });
    expect(errors).toEqual([]);
  }, 60_000);
});
