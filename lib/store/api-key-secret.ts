/**
 * API key secrets: `am_<keyId>_<43 random base64url chars>`. The key id is
 * public (it is the lookup key and appears in listings); the rest is 256
 * random bits. Because the secret is high-entropy, a single SHA-256 is a safe
 * and microsecond-cheap verifier (slow hashes such as scrypt exist for
 * low-entropy passwords and would cost milliseconds on every request).
 *
 * @example
 * const { keyId, secret, secretHash } = newApiKey();
 * parseApiKey(secret)?.keyId === keyId;
 * verifyApiKeySecret(secret, secretHash); // true
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

const pattern = /^am_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

/** A fresh key: its public id, the secret to hand out once, and the hash to store. */
export function newApiKey(): { keyId: string; secret: string; secretHash: string } {
  const keyId = randomBytes(8).readBigUInt64BE().toString(36).padStart(12, "0").slice(-12);
  const secret = `am_${keyId}_${randomBytes(32).toString("base64url")}`;
  return { keyId, secret, secretHash: hashApiKeySecret(secret) };
}

/** The key id of a well-formed secret, or undefined. */
export function parseApiKey(secret: string): { keyId: string } | undefined {
  const match = pattern.exec(secret);
  return match ? { keyId: match[1] as string } : undefined;
}

/** `sha256:<hex>` of the secret. */
export function hashApiKeySecret(secret: string): string {
  return `sha256:${createHash("sha256").update(secret).digest("hex")}`;
}

/** Whether `secret` matches a stored hash, in constant time. */
export function verifyApiKeySecret(secret: string, secretHash: string): boolean {
  const expected = Buffer.from(secretHash);
  const actual = Buffer.from(hashApiKeySecret(secret));
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
