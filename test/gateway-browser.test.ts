/**
 * The dashboard in a real browser (Debian's headless Chromium driven by
 * playwright-core): connect with an API key, submit a goal, watch it finish
 * live through WatchGoal, see its DAG, the agents, and a policy denial.
 * A screenshot goes to test-results/.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needPostgres } from "../lib/testing/infra.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(executablePath);
if (!haveChromium) {
  const message = `Chromium is not installed at ${executablePath} (apt-get install -y chromium)`;
  if (process.env.CI === "true") throw new Error(message);
  console.warn(`\n!!! ${message}: SKIPPING the dashboard browser test. !!!\n`);
}

describe.skipIf(!pg || !haveChromium)("dashboard in Chromium", () => {
  let f: GatewayFixture;
  let browser: Browser;
  beforeAll(async () => {
    f = await startGatewayFixture(pg!.url, {
      stepMs: 150,
      queueStats: async () => [
        { capability: "text.summarize", depth: 2, lag: 1, ackPending: 1, redelivered: 0 },
      ],
    });
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
  });
  afterAll(async () => {
    await browser?.close();
    await f?.close();
  });

  it("submits a goal, shows it finishing live, its DAG and the agents", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    // A denial first, so the dashboard has one to show.
    await fetch(`${f.url}/agentmesh.v1.ExecutorService/SubmitGoal`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${f.keys.acmeReader}` },
      body: '{"kind":"research"}',
    });
    await page.goto(f.url);
    await page.getByLabel("API key").fill(f.keys.acmeWriter);
    await page.getByRole("button", { name: "Connect" }).click();
    await expect.poll(() => page.locator("#status").textContent()).toMatch(/Connected/);

    await page.getByLabel("Kind").fill("research");
    await page.getByRole("button", { name: "Submit" }).click();
    // Live progress: a step is seen running before the goal finishes.
    await page.locator('#dag .step[data-status="running"]').first().waitFor({ timeout: 10_000 });
    await page.locator("#goals tbody td.status-succeeded").first().waitFor({ timeout: 15_000 });
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
    expect(await page.locator("#agents tbody").textContent()).toContain("agent-http-1");
    await expect.poll(() => page.locator("#denials").textContent()).toMatch(/SubmitGoal/);
    expect(await page.locator("#queues tbody").textContent()).toMatch(/text\.summarize\s*2/);

    await mkdir("test-results", { recursive: true });
    await page.screenshot({ path: "test-results/dashboard.png", fullPage: true });
    expect(errors).toEqual([]);
  }, 60_000);
});
