import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { Code, type MeshError } from "../lib/errors/mesh-error.js";
import { jwtAuthenticator } from "./jwt-auth.js";

const { publicKey, privateKey } = await generateKeyPair("ES256");
const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" }] };
const issuer = "https://idp.example/";
const audience = "agentmesh";

const token = (claims: { iss?: string; aud?: string }) => {
  const jwt = new SignJWT({ tenant_id: "acme", roles: ["goals.read"] })
    .setProtectedHeader({ alg: "ES256", kid: "k1" })
    .setSubject("alice")
    .setExpirationTime("5m");
  if (claims.iss) jwt.setIssuer(claims.iss);
  if (claims.aud) jwt.setAudience(claims.aud);
  return jwt.sign(privateKey);
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
});
