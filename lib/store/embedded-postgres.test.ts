/**
 * The embedded PostgreSQL from scratch: initdb, start, migrate, write, read,
 * stop, start again, read again; then a process holding it is SIGKILLed and
 * the next start stops the orphaned server and carries on. Runs as root too:
 * the server then runs as an unprivileged system user (see the module).
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openStore } from "./store.js";

const home = await mkdtemp(join(tmpdir(), "agentmesh-embedded-"));
const dataDir = join(home, "data");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A stopped orphan nobody reaps stays a zombie: dead for our purposes.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

async function serverPid(): Promise<number | undefined> {
  const text = await readFile(join(dataDir, "postmaster.pid"), "utf8").catch(() => undefined);
  return text ? Number(text.split("\n")[0]) : undefined;
}

describe("embedded PostgreSQL", () => {
  afterAll(async () => {
    // Whatever happened above, leave no server behind.
    const pid = await serverPid();
    if (pid && alive(pid)) process.kill(pid, "SIGQUIT");
    await rm(home, { recursive: true, force: true });
  });

  it("starts from scratch, migrates, writes, reads, restarts and reads again", async () => {
    const first = await openStore({ embedded: true, home });
    let goalId: string;
    try {
      expect(first.location).toMatch(
        /^postgres:\/\/postgres:\*+@127\.0\.0\.1:\d+\/postgres \[embedded\]$/,
      );
      await first.tenants.create({ id: "acme", displayName: "Acme" });
      ({
        goal: { id: goalId },
      } = await first.tenant("acme").goals.create({ kind: "persisted", input: { n: 1 } }));
      const settings = await first.orm.em
        .fork()
        .execute<{ listen: string; enc: string }[]>(
          "select current_setting('listen_addresses') as listen, current_setting('password_encryption') as enc",
        );
      expect(settings[0]).toEqual({ listen: "127.0.0.1", enc: "scram-sha-256" });
    } finally {
      await first.close();
    }
    expect(await serverPid()).toBeUndefined();
    expect((await stat(join(home, "postgres-password"))).mode & 0o777).toBe(0o600);
    const hba = await readFile(join(dataDir, "pg_hba.conf"), "utf8");
    expect(hba).toMatch(/scram-sha-256/);
    expect(
      hba.split("\n").filter((l) => /^\s*(local|host)/.test(l) && /\btrust\b/.test(l)),
    ).toEqual([]);

    const second = await openStore({ embedded: true, home });
    try {
      expect((await second.tenant("acme").goals.get(goalId)).input).toEqual({ n: 1 });
    } finally {
      await second.close();
    }
  });

  it("stops the server a killed process left behind and starts afresh", async () => {
    const module = resolve("lib/store/embedded-postgres.ts");
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `import { startEmbeddedPostgres } from ${JSON.stringify(module)};
         const pg = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(dataDir)} });
         console.log("ready " + pg.port);
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolveReady, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("ready")) resolveReady();
      });
      child.once("exit", (code) => reject(new Error(`child exited with ${code}`)));
    });
    const orphan = await serverPid();
    expect(orphan && alive(orphan)).toBe(true);
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    expect(alive(orphan!)).toBe(true); // the server outlives its owner

    const store = await openStore({ embedded: true, home });
    try {
      expect(alive(orphan!)).toBe(false);
      expect((await store.tenants.get("acme")).displayName).toBe("Acme");
    } finally {
      await store.close();
    }
  });
});
