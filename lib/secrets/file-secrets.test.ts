import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { rotateFileKek } from "./file-key-wrapper.js";
import { openFileSecrets } from "./file-secrets.js";

const until = async (check: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe("file secrets", () => {
  it("reads a secret from its file in the secrets directory and hands a changed file to subscribers", async () => {
    const home = mkdtempSync(join(tmpdir(), "secrets-"));
    const dir = join(home, "mounted");
    mkdirSync(dir);
    writeFileSync(join(dir, "jwt-jwks"), '{"keys":[1]}\n');
    const secrets = openFileSecrets({ home, env: { AGENTMESH_SECRETS_DIR: dir } });
    try {
      expect(await secrets.get("jwt-jwks")).toBe('{"keys":[1]}');
      const seen: (string | undefined)[] = [];
      secrets.subscribe("jwt-jwks", (v) => seen.push(v));
      // Kubernetes swaps a mounted Secret by rename; so does this.
      writeFileSync(join(dir, "jwt-jwks.new"), '{"keys":[2]}\n');
      const { renameSync } = await import("node:fs");
      renameSync(join(dir, "jwt-jwks.new"), join(dir, "jwt-jwks"));
      await until(() => seen.length > 0);
      expect(seen).toEqual(['{"keys":[2]}']);
      expect(await secrets.get("jwt-jwks")).toBe('{"keys":[2]}');
      expect(await secrets.get("llm-planner-api-key")).toBeUndefined();
      await expect(secrets.require("llm-planner-api-key")).rejects.toThrow(
        `put it at ${join(dir, "llm-planner-api-key")}`,
      );
    } finally {
      await secrets.close();
    }
  });

  it("takes DATABASE_URL from the environment and keeps the old places of the admin and checkpoint keys", async () => {
    const home = mkdtempSync(join(tmpdir(), "secrets-"));
    const secrets = openFileSecrets({ home, env: { DATABASE_URL: "postgres://u:p@db/x" } });
    try {
      expect(await secrets.get("database-url")).toBe("postgres://u:p@db/x");
      expect(secrets.location("database-url")).toBe("the environment (DATABASE_URL)");
      expect(secrets.location("admin-api-key")).toBe(join(home, "admin.key"));
      expect(secrets.location("audit-checkpoint-key")).toBe(join(home, "audit-checkpoint.key"));
    } finally {
      await secrets.close();
    }
  });

  it("creates a generated secret once, mode 0600, and the first of two creators wins", async () => {
    const home = mkdtempSync(join(tmpdir(), "secrets-"));
    const secrets = openFileSecrets({ home, env: {} });
    try {
      const [a, b] = await Promise.all([
        secrets.create("admin-api-key", "first"),
        secrets.create("admin-api-key", "second"),
      ]);
      expect(a).toBe(b);
      expect(await readFile(join(home, "admin.key"), "utf8")).toBe(`${a}\n`);
      expect(statSync(join(home, "admin.key")).mode & 0o777).toBe(0o600);
    } finally {
      await secrets.close();
    }
  });

  it("wraps data keys with a file KEK; after a rotation old wrappings unwrap and rewrap moves them to the new KEK", async () => {
    const home = mkdtempSync(join(tmpdir(), "secrets-"));
    const secrets = openFileSecrets({ home, env: {} });
    try {
      const dataKey = randomBytes(32);
      const wrapped = await secrets.keys.wrap(dataKey);
      expect(wrapped).toMatch(/^kek:v1:/);
      expect(statSync(join(home, "secrets", "data-kek")).mode & 0o777).toBe(0o600);
      expect(await rotateFileKek(secrets)).toBe(2);
      const rewrapped = await secrets.keys.rewrap(wrapped);
      expect(rewrapped).toMatch(/^kek:v2:/);
      expect(await secrets.keys.unwrap(wrapped)).toEqual(dataKey);
      expect(await secrets.keys.unwrap(rewrapped)).toEqual(dataKey);
      const tampered = `${rewrapped.slice(0, -6)}AAAAA=`;
      await expect(secrets.keys.unwrap(tampered)).rejects.toThrow(/failed authentication/);
    } finally {
      await secrets.close();
    }
  });
});
