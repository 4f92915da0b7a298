import { mkdirSync, mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it, vi } from "vitest";
import { Code, type MeshError } from "../lib/errors/mesh-error.js";
import { openFileSecrets } from "../lib/secrets/file-secrets.js";
import { jwtAuthenticator } from "./jwt-auth.js";

const { publicKey, privateKey } = await generateKeyPair("ES256");
const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" }] };
const issuer = "https://idp.example/";
const audience = "agentmesh";

const token = (
  claims: { iss?: string; aud?: string },
  key: typeof privateKey = privateKey,
  kid = "k1",
) => {
  const jwt = new SignJWT({ tenant_id: "acme", roles: ["goals.read"] })
    .setProtectedHeader({ alg: "ES256", kid })
    .setSubject("alice")
    .setExpirationTime("5m");
  if (claims.iss) jwt.setIssuer(claims.iss);
  if (claims.aud) jwt.setAudience(claims.aud);
  return jwt.sign(key);
};

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: MeshError) => e,
  );

describe("JWT auth", () => {
  it("refuses to start without an issuer and an audience, saying what is missing", async () => {
    const none = await refusal(jwtAuthenticator({ jwks } as never));
    expect(none?.code).toBe(Code.FailedPrecondition);
    expect(none?.message).toMatch(/JWT auth needs issuer and audience/);
    const noAudience = await refusal(jwtAuthenticator({ jwks, issuer, audience: " " }));
    expect(noAudience?.message).toMatch(/JWT auth needs audience:/);
  });

  it("accepts a token of its issuer for its audience, and no other", async () => {
    const jwt = await jwtAuthenticator({ jwks, issuer, audience });
    const principal = await jwt.verify(await token({ iss: issuer, aud: audience }));
    expect(principal).toMatchObject({
      tenantId: "acme",
      subject: "jwt:alice",
      roles: ["goals.read"],
    });
    for (const [claims, reason] of [
      [{ iss: issuer, aud: "another-app" }, /claim aud/],
      [{ iss: "https://evil.example/", aud: audience }, /claim iss/],
      [{ aud: audience }, /claim iss/],
      [{ iss: issuer }, /claim aud/],
    ] as const) {
      const err = await refusal(jwt.verify(await token(claims)));
      expect(err?.code).toBe(Code.Unauthenticated);
      expect(err?.message).toMatch(reason);
    }
  });

  it("reads the JWKS from the jwt-jwks secret and follows its rotation without a restart", async () => {
    const home = mkdtempSync(join(tmpdir(), "jwks-"));
    const file = join(home, "idp", "jwks.json");
    mkdirSync(join(home, "idp"));
    const next = await generateKeyPair("ES256");
    const rotated = { keys: [{ ...(await exportJWK(next.publicKey)), kid: "k2", alg: "ES256" }] };
    // AGENTMESH_JWT_JWKS_FILE names where the file provider finds the secret.
    const secrets = openFileSecrets({ home, env: { AGENTMESH_JWT_JWKS_FILE: file }, pollMs: 100 });
    try {
      const missing = await refusal(jwtAuthenticator({ jwksSecret: secrets, issuer, audience }));
      expect(missing?.code).toBe(Code.FailedPrecondition);
      expect(missing?.message).toContain(`secret jwt-jwks`);
      expect(missing?.message).toContain(file);

      writeFileSync(file, JSON.stringify(jwks));
      const jwt = await jwtAuthenticator({ jwksSecret: secrets, issuer, audience });
      const old = await token({ iss: issuer, aud: audience });
      const fresh = await token({ iss: issuer, aud: audience }, next.privateKey, "k2");
      expect((await jwt.verify(old)).subject).toBe("jwt:alice");
      expect((await refusal(jwt.verify(fresh)))?.message).toMatch(/unknown key/);

      // The identity provider rotates: the new JWKS lands whole, by rename.
      writeFileSync(`${file}.new`, JSON.stringify(rotated));
      renameSync(`${file}.new`, file);
      await vi.waitFor(async () => expect((await jwt.verify(fresh)).subject).toBe("jwt:alice"), {
        timeout: 10_000,
        interval: 50,
      });
      expect((await refusal(jwt.verify(old)))?.message).toMatch(/unknown key/);

      // A broken JWKS keeps the last good keys.
      writeFileSync(`${file}.new`, "{not json");
      renameSync(`${file}.new`, file);
      await vi.waitFor(async () => expect(await secrets.get("jwt-jwks")).toBe("{not json"), {
        timeout: 10_000,
        interval: 50,
      });
      expect((await jwt.verify(fresh)).subject).toBe("jwt:alice");
      jwt.close();
    } finally {
      await secrets.close();
      await rm(home, { recursive: true, force: true });
    }
  });
});
