/**
 * The Vault secrets provider's contract. With VAULT_ADDR and VAULT_TOKEN set
 * (a token allowed to write the KV and Transit mounts and create tokens) it
 * runs against that Vault; otherwise against `support/vault-api-stand-in.ts`,
 * a loopback server answering only the documented endpoints the provider
 * calls. Either way the provider is the shipped one, through node-vault.
 */

import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import nodeVault from "node-vault";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jwtAuthenticator } from "../gateway/jwt-auth.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { openSecrets } from "../lib/secrets/open-secrets.js";
import { openVaultSecrets, type VaultSecrets } from "../lib/secrets/vault-secrets.js";
import { startVaultApiStandIn, type VaultApiStandIn } from "./support/vault-api-stand-in.js";

/** What the suite needs from a Vault besides the provider's own calls: setting things up. */
interface VaultUnderTest {
  addr: string;
  rootToken: string;
  putSecret(path: string, value: string): Promise<void>;
  createToken(ttlSeconds: number): Promise<string>;
  rotateTransitKey(key: string): Promise<void>;
  /** Only the stand-in can make auth roles; a real Vault's are the operator's. */
  standIn?: VaultApiStandIn;
  close(): Promise<void>;
}

const realAddr = process.env.VAULT_ADDR;
const realToken = process.env.VAULT_TOKEN;
const real = Boolean(realAddr && realToken);
const kvMount = "secret";
const prefix = `agentmesh-test-${randomBytes(4).toString("hex")}`;
const transitKey = `agentmesh-test-${randomBytes(4).toString("hex")}`;

async function realVault(addr: string, token: string): Promise<VaultUnderTest> {
  const admin = nodeVault({ endpoint: addr, token });
  await admin.write(`transit/keys/${transitKey}`, {});
  return {
    addr,
    rootToken: token,
    putSecret: (path, value) =>
      admin.write(`${kvMount}/data/${prefix}/${path}`, { data: { value } }),
    async createToken(ttl) {
      const res = await admin.write("auth/token/create", {
        ttl: `${ttl}s`,
        renewable: true,
        policies: ["default"],
        no_default_policy: false,
      });
      return res.auth.client_token as string;
    },
    rotateTransitKey: (key) => admin.write(`transit/keys/${key}/rotate`, {}),
    close: async () => undefined,
  };
}

async function standInVault(): Promise<VaultUnderTest> {
  const s = await startVaultApiStandIn();
  return {
    addr: s.addr,
    rootToken: s.rootToken,
    putSecret: async (path, value) => s.putSecret(kvMount, `${prefix}/${path}`, { value }),
    createToken: async (ttl) => s.createToken(ttl),
    rotateTransitKey: async (key) => s.rotateTransitKey(key),
    standIn: s,
    close: () => s.close(),
  };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

const until = async (check: () => boolean | Promise<boolean>, ms = 5000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe(
  real
    ? "Vault secrets provider against the Vault at VAULT_ADDR"
    : "Vault secrets provider against a loopback stand-in for Vault's HTTP API (not a real Vault)",
  () => {
    let vault: VaultUnderTest;
    const opened: VaultSecrets[] = [];
    const open = async (extra: Partial<Parameters<typeof openVaultSecrets>[0]> = {}) => {
      const s = await openVaultSecrets({
        addr: vault.addr,
        auth: { method: "token", token: vault.rootToken },
        kvMount,
        kvPrefix: prefix,
        transitKey,
        cacheMs: 100,
        minRenewMs: 200,
        ...extra,
      });
      opened.push(s);
      return s;
    };

    beforeAll(async () => {
      vault = real
        ? await realVault(realAddr as string, realToken as string)
        : await standInVault();
    });
    afterAll(async () => {
      for (const s of opened) await s.close();
      await vault?.close();
    });

    it("reads a KV v2 secret and hands its rotation to subscribers without a restart", async () => {
      await vault.putSecret("database-url", "postgres://app:first@db/app");
      const secrets = await open();
      expect(secrets.status()).toEqual({ ready: true });
      expect(await secrets.require("database-url")).toBe("postgres://app:first@db/app");
      const seen: (string | undefined)[] = [];
      secrets.subscribe("database-url", (v) => seen.push(v));
      await vault.putSecret("database-url", "postgres://app:second@db/app");
      await until(() => seen.length > 0);
      expect(seen).toEqual(["postgres://app:second@db/app"]);
      expect(await secrets.get("database-url")).toBe("postgres://app:second@db/app");
    });

    it("the gateway's JWT verification follows a JWKS rotated in Vault, without a restart", async () => {
      const signer = async () => {
        const { publicKey, privateKey } = await generateKeyPair("ES256");
        const kid = randomBytes(4).toString("hex");
        const jwks = JSON.stringify({
          keys: [{ ...(await exportJWK(publicKey)), kid, alg: "ES256" }],
        });
        const token = await new SignJWT({ tenant_id: "acme" })
          .setProtectedHeader({ alg: "ES256", kid })
          .setSubject("alice")
          .setIssuer("https://idp.example/")
          .setAudience("agentmesh")
          .setExpirationTime("5m")
          .sign(privateKey);
        return { jwks, token };
      };
      const [first, second] = [await signer(), await signer()];
      await vault.putSecret("jwt-jwks", first.jwks);
      const secrets = await open();
      const jwt = await jwtAuthenticator({
        jwksSecret: secrets,
        issuer: "https://idp.example/",
        audience: "agentmesh",
      });
      expect((await jwt.verify(first.token)).subject).toBe("jwt:alice");
      await expect(jwt.verify(second.token)).rejects.toThrow(/unknown key/);
      await vault.putSecret("jwt-jwks", second.jwks);
      await until(
        () =>
          jwt.verify(second.token).then(
            () => true,
            () => false,
          ),
        10_000,
      );
      await expect(jwt.verify(first.token)).rejects.toThrow(/unknown key/);
      jwt.close();
    });

    it("answers undefined for a secret Vault does not hold, and `require` says where to write it", async () => {
      const secrets = await open();
      expect(await secrets.get("llm-planner-api-key")).toBeUndefined();
      await expect(secrets.require("llm-planner-api-key")).rejects.toThrow(
        `put it at Vault ${vault.addr} KV ${kvMount}/data/${prefix}/llm-planner-api-key`,
      );
      await expect(secrets.put("admin-api-key", "x")).rejects.toMatchObject({
        code: Code.FailedPrecondition,
      });
    });

    it("wraps data keys with Transit; after the key rotates, rewrap moves them to the new version and both unwrap", async () => {
      const secrets = await open();
      const dataKey = randomBytes(32);
      const wrapped = await secrets.keys.wrap(dataKey);
      expect(wrapped).toMatch(/^vault:v1:/);
      expect(wrapped).not.toContain(dataKey.toString("base64"));
      expect(await secrets.keys.unwrap(wrapped)).toEqual(dataKey);
      await vault.rotateTransitKey(transitKey);
      const rewrapped = await secrets.keys.rewrap(wrapped);
      expect(rewrapped).toMatch(/^vault:v2:/);
      expect(await secrets.keys.unwrap(rewrapped)).toEqual(dataKey);
      expect(await secrets.keys.unwrap(wrapped)).toEqual(dataKey);
      await expect(secrets.keys.unwrap("vault:v1:AAAA")).rejects.toBeInstanceOf(MeshError);
    });

    it("renews a short-lived token before it expires, so reads keep working past its first TTL", async () => {
      await vault.putSecret("jwt-jwks", '{"keys":[]}');
      const token = await vault.createToken(2);
      const secrets = await open({ auth: { method: "token", token } });
      await new Promise((r) => setTimeout(r, 2600));
      expect(secrets.counts.renewals).toBeGreaterThanOrEqual(1);
      expect(await secrets.get("jwt-jwks")).toBe('{"keys":[]}');
      expect(secrets.status().ready).toBe(true);
    });

    it.skipIf(real)(
      "logs in with Kubernetes auth (service account token file) and with AppRole",
      async () => {
        const s = vault.standIn as VaultApiStandIn;
        const dir = mkdtempSync(join(tmpdir(), "vault-auth-"));
        const jwtFile = join(dir, "token");
        writeFileSync(jwtFile, "eyJ.service-account.jwt\n");
        s.addKubernetesRole("agentmesh", "eyJ.service-account.jwt", 60);
        const secretIdFile = join(dir, "secret-id");
        writeFileSync(secretIdFile, "the-secret-id\n");
        s.addAppRole("the-role-id", "the-secret-id", 60);
        await vault.putSecret("admin-api-key", "am_x");

        const k8s = await open({ auth: { method: "kubernetes", role: "agentmesh", jwtFile } });
        expect(await k8s.get("admin-api-key")).toBe("am_x");
        const approle = await open({
          auth: { method: "approle", roleId: "the-role-id", secretIdFile },
        });
        expect(await approle.get("admin-api-key")).toBe("am_x");
        expect(s.requests).toEqual(
          expect.arrayContaining([
            "POST /v1/auth/kubernetes/login",
            "POST /v1/auth/approle/login",
            "GET /v1/auth/token/lookup-self",
          ]),
        );
        s.addKubernetesRole("agentmesh", "another.jwt", 60);
        await expect(
          openVaultSecrets({
            addr: vault.addr,
            auth: { method: "kubernetes", role: "agentmesh", jwtFile },
          }),
        ).rejects.toMatchObject({ code: Code.PermissionDenied });
      },
    );

    it("is chosen by AGENTMESH_SECRETS_PROVIDER=vault and the VAULT_* settings", async () => {
      await vault.putSecret("database-url", "postgres://from-settings");
      const secrets = await openSecrets({
        AGENTMESH_SECRETS_PROVIDER: "vault",
        VAULT_ADDR: vault.addr,
        VAULT_TOKEN: vault.rootToken,
        AGENTMESH_VAULT_KV_PREFIX: prefix,
      });
      try {
        expect(secrets.provider).toBe("vault");
        expect(await secrets.get("database-url")).toBe("postgres://from-settings");
      } finally {
        await secrets.close();
      }
    });
  },
);

describe("Vault secrets provider when Vault does not answer", () => {
  it("fails to open with UNAVAILABLE naming VAULT_ADDR, so the process is not ready", async () => {
    const addr = `http://127.0.0.1:${await closedPort()}`;
    const err = await openVaultSecrets({ addr, auth: { method: "token", token: "t" } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MeshError);
    expect(err).toMatchObject({ code: Code.Unavailable });
    expect((err as Error).message).toContain(`cannot log in to Vault at ${addr} (VAULT_ADDR)`);
    await expect(
      openSecrets({ AGENTMESH_SECRETS_PROVIDER: "vault", VAULT_TOKEN: "t" }),
    ).rejects.toThrow("AGENTMESH_SECRETS_PROVIDER=vault needs VAULT_ADDR");
  });

  it("keeps serving the last values but is not ready when Vault stops answering after boot", async () => {
    const s = await startVaultApiStandIn();
    s.putSecret("secret", "agentmesh/database-url", { value: "postgres://cached" });
    const secrets = await openVaultSecrets({
      addr: s.addr,
      auth: { method: "token", token: s.rootToken },
      cacheMs: 50,
    });
    try {
      expect(await secrets.get("database-url")).toBe("postgres://cached");
      await s.close();
      await new Promise((r) => setTimeout(r, 80));
      expect(await secrets.get("database-url")).toBe("postgres://cached");
      expect(secrets.status().ready).toBe(false);
      expect(secrets.status().error).toContain(s.addr);
    } finally {
      await secrets.close();
    }
  });
});
