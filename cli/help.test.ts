/**
 * `--help` on every command and every sub-command its usage names prints that
 * usage and exits 0, without running anything (no gateway, database or NATS
 * needed); `help <command>` and a bare `--help` too.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterEach, describe, expect, it, vi } from "vitest";
import { commands } from "./commands/index.js";
import { main } from "./dispatch.js";

const exec = promisify(execFile);

/** The sub-commands the usage's first line names: `<a|b|c>` or a literal word. */
function subCommands(name: string, usage: string): string[] {
  const first = usage.split("\n")[0]!.slice(`agentmesh ${name} `.length);
  const choice = /^<([a-z|-]+)>/.exec(first);
  if (choice) return choice[1]!.split("|");
  const word = /^([a-z][a-z-]*)\b/.exec(first);
  return word ? [word[1]!] : [];
}

async function run(args: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const log = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => {
    out += `${a.join(" ")}\n`;
  });
  const error = vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => {
    out += `${a.join(" ")}\n`;
  });
  try {
    return { code: await main(args), out };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

describe("agentmesh --help", () => {
  afterEach(() => vi.restoreAllMocks());

  it("answers for every command and sub-command with the command's usage", async () => {
    let checked = 0;
    for (const [name, load] of Object.entries(commands)) {
      const { usage } = await load();
      const subs = subCommands(name, usage);
      for (const args of [[name], ...subs.map((s) => [name, s])]) {
        for (const flag of ["--help", "-h"]) {
          const r = await run([...args, flag]);
          expect(r.code, `${args.join(" ")} ${flag}: ${r.out}`).toBe(0);
          expect(r.out).toBe(`usage: ${usage}\n`);
          checked++;
        }
      }
      expect((await run(["help", name])).out).toBe(`${usage}\n`);
    }
    expect(checked).toBeGreaterThan(60);
    const top = await run(["--help"]);
    expect(top.code).toBe(0);
    for (const name of Object.keys(commands)) expect(top.out).toContain(`  ${name} `);
  });

  it("leaves --help after -- to the wrapped command", async () => {
    const r = await run(["agent", "mcp", "--", "server", "--help"]);
    expect(r.code).toBe(2);
    expect(r.out).toContain("mcp needs --server NAME");
  });

  it("works from the command line", async () => {
    const { stdout } = await exec("node", ["bin/agentmesh.js", "goal", "submit", "--help"], {
      timeout: 60_000,
    });
    expect(stdout).toMatch(/^usage: agentmesh goal <submit\|/);
  }, 60_000);
});
