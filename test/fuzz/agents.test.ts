/**
 * Fuzzing the built-in agents that run untrusted input:
 * - `data.transform` with generated JSONata: compositions of builtins with
 *   huge sizes, backtracking regexes, recursion, plus noise. Every evaluation
 *   returns JSON within the size cap or fails with a non-retryable error of a
 *   known code, within its time limit plus the kill grace, and the host's
 *   event loop stays free.
 * - `shell.exec` with generated arguments for every default command: flags
 *   that read, write or run things, absolute and escaping paths, noise. Every
 *   argument list the policy allows is run: a world-readable secret never
 *   shows in the output, and nothing is written outside the job's directory.
 * The count of inputs per run is printed (`fuzz <name>: N inputs`).
 */

import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { createDataAgent } from "../../agents/data.js";
import { createShellAgent } from "../../agents/shell.js";
import { checkArgs, commandPolicies, defaultAllowCommands } from "../../agents/shell-policy.js";
import { isAgentError } from "../../sdk/agent/agent-error.js";
import { testSkillContext } from "../../sdk/agent/test-context.js";
import { startHealthProbe } from "../hostile-input/health-probe.js";
import { fuzzFor } from "./inputs.js";

const budgetMs = Number(process.env.FUZZ_BUDGET_MS ?? 12_000);

const size = fc.oneof(
  fc.integer({ min: -10, max: 1_000 }),
  fc.constantFrom(100_000, 1_000_000, 200_000_000, -200_000_000, 2 ** 31, 1e12),
);
const str = fc.oneof(
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"', "s", "$"),
);
const regex = fc.constantFrom(
  "/(a+)+$/",
  "/(a|aa)+$/",
  "/(a*)*b/",
  "/(.*a){20}/",
  "/a/i",
  "/[/",
  "/^(\\w+\\s?)*$/",
);

/** JSONata expressions: builtins composed with hostile sizes and regexes, and noise. */
const expression: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
  e: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    str,
    size.map(String),
    fc.tuple(str, size).map(([s, n]) => `$pad(${s}, ${n})`),
    fc.tuple(size, size).map(([a, b]) => `[${a}..${b}]`),
    tie("e").map((x) => `$string(${x})`),
    tie("e").map((x) => `$join($map([1..50], function($v){ ${x} }))`),
    tie("e").map((x) => `$sort(${x})`),
    tie("e").map((x) => `$count(${x})`),
    tie("e").map((x) => `$reduce([1..30], function($a, $v){ $a & $a }, ${x})`),
    fc.tuple(str, regex).map(([s, r]) => `$match(${s}, ${r})`),
    fc.tuple(str, regex).map(([s, r]) => `$replace(${s}, ${r}, "x")`),
    fc.tuple(str, regex).map(([s, r]) => `$split(${s}, ${r})`),
    tie("e").map((x) => `($f := function($n){ $n > 0 ? ${x} & $f($n - 1) : "" }; $f(1000))`),
    fc.constant("($f := function($n){ 1 + $f($n + 1) }; $f(0))"),
    fc.constant("($f := function($n){ $f($n + 1) }; $f(0))"),
    fc.tuple(tie("e"), tie("e")).map(([a, b]) => `${a} & ${b}`),
    fc.tuple(tie("e"), tie("e")).map(([a, b]) => `{"k": ${a}, "v": ${b}}`),
    tie("e").map((x) => `$eval(${JSON.stringify(x)})`),
    fc.string({ maxLength: 40 }),
  ),
})).e;

const knownCodes = ["INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"];

describe("fuzz: JSONata through the data agent's sandbox", () => {
  it("ends every expression within its limits, never as a crash of this process", {
    timeout: 120_000,
  }, async () => {
    const timeLimitMs = 500;
    const agent = createDataAgent({ timeLimitMs });
    const handler = agent.skills["data.transform"]!.handler;
    const probe = await startHealthProbe();
    const outcomes = new Map<string, number>();
    let slowest = 0;
    const n = await fuzzFor(
      "data.transform expressions",
      expression,
      budgetMs,
      async (expr) => {
        const start = Date.now();
        try {
          const out = (await handler(
            { expression: expr, data: { s: "aaaa" } },
            testSkillContext(),
          )) as {
            result: unknown;
          };
          expect(Buffer.byteLength(JSON.stringify(out.result ?? null))).toBeLessThanOrEqual(
            256 * 1024,
          );
          outcomes.set("ok", (outcomes.get("ok") ?? 0) + 1);
        } catch (err) {
          expect(isAgentError(err), `${expr}: ${err}`).toBe(true);
          const e = err as { code: string; retryable: boolean };
          expect(knownCodes, expr).toContain(e.code);
          expect(e.retryable, expr).toBe(false);
          outcomes.set(e.code, (outcomes.get(e.code) ?? 0) + 1);
        }
        const took = Date.now() - start;
        slowest = Math.max(slowest, took);
        // The kill comes 100 ms after the limit; a busy machine may add a little.
        expect(took, expr).toBeLessThan(timeLimitMs + 3_000);
      },
      agent.skills["data.transform"]!.maxConcurrency,
    );
    const health = await probe.stop();
    console.log(
      `fuzz data.transform: outcomes ${JSON.stringify(Object.fromEntries(outcomes))}, slowest ${slowest} ms, host /healthz ${JSON.stringify(health)}`,
    );
    expect(n).toBeGreaterThan(10);
    // Every /healthz answered within a second while the suite runs in parallel with the rest
    // (the hostile-input suite, run alone, holds the host to 100 ms).
    expect(health.failed, JSON.stringify(health)).toBe(0);
  });
});

describe("fuzz: shell arguments through the policy and the sandbox", () => {
  const secret = randomBytes(16).toString("hex");
  const dir = mkdtempSync(join(tmpdir(), "fuzz-shell-"));
  const canary = mkdtempSync(join(tmpdir(), "fuzz-canary-"));
  // World-readable, so only the argument policy keeps it out of the output.
  const secretFile = join(dir, "admin.key");
  writeFileSync(secretFile, `${secret}\n`, { mode: 0o644 });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(canary, { recursive: true, force: true });
  });

  const value = fc.oneof(
    fc.constantFrom(
      secretFile,
      `${canary}/out`,
      "../../../../etc/passwd",
      "~/x",
      "/proc/self/environ",
      "-",
      "x.txt",
      "5",
      "+%F",
      "sh",
    ),
    fc.string({ maxLength: 10 }),
  );
  const flag = fc.oneof(
    fc.constantFrom(
      "-f",
      "--file",
      "-o",
      "--output",
      "-r",
      "--reference",
      "-s",
      "--set",
      "-T",
      "--files0-from",
      "--compress-program",
      "--random-source",
      "-d",
      "--date",
      "-n",
      "-c",
      "-k",
      "-t",
      "-u",
      "-z",
      "--",
      "-I",
      "-e",
    ),
    fc.stringMatching(/^-[a-zA-Z]{1,3}$/),
    fc.stringMatching(/^--[a-z-]{1,12}$/),
  );
  const arg = fc.oneof(
    flag,
    value,
    fc.tuple(flag, value).map(([f, v]) => (f.startsWith("--") ? `${f}=${v}` : `${f}${v}`)),
  );
  const call = fc.record({
    command: fc.constantFrom(...defaultAllowCommands),
    args: fc.array(arg, { maxLength: 5 }),
  });

  it("never shows a readable secret and never writes outside the job", {
    timeout: 120_000,
  }, async () => {
    const exec = createShellAgent().skills["shell.exec"]!.handler;
    let allowed = 0;
    let refused = 0;
    const n = await fuzzFor(
      "shell.exec arguments",
      call,
      budgetMs,
      async ({ command, args }) => {
        const why = checkArgs(command, args);
        try {
          const out = (await exec({ command, args, timeoutMs: 3_000 }, testSkillContext())) as {
            stdout: string;
            stderr: string;
          };
          expect(why, `${command} ${args.join(" ")}`).toBeUndefined();
          allowed++;
          expect(out.stdout + out.stderr, `${command} ${args.join(" ")}`).not.toContain(secret);
        } catch (err) {
          expect(err, `${command} ${args.join(" ")}`).toMatchObject({
            code: "PERMISSION_DENIED",
            retryable: false,
          });
          refused++;
        }
      },
      4,
    );
    console.log(`fuzz shell.exec: ${allowed} allowed and run, ${refused} refused`);
    expect(n).toBeGreaterThan(10);
    expect(readdirSync(canary)).toEqual([]);
    expect(Object.keys(commandPolicies).sort()).toEqual([...defaultAllowCommands].sort());
  });
});
