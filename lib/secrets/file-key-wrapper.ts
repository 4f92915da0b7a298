/**
 * Data keys wrapped by a key-encryption key kept in a file (the `data-kek`
 * secret): AES-256-GCM, one KEK per line as `v<N> <base64 of 32 bytes>`, the
 * newest wrapping and every listed version unwrapping, so rotation (a new
 * line) re-wraps data keys without touching what they encrypt. Created with
 * one version on first use, like the other keys the mesh makes itself.
 *
 * @example
 * const wrapped = await secrets.keys.wrap(dataKey); // "kek:v1:..."
 * await rotateFileKek(secrets); // adds v2
 * const rewrapped = await secrets.keys.rewrap(wrapped); // "kek:v2:..."
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { Code, MeshError } from "../errors/mesh-error.js";
import type { KeyWrapper, SecretStore } from "./secret-store.js";

const aad = Buffer.from("agentmesh.data-key.v1");

/** The KEK versions in a `data-kek` text, newest last. */
export function parseKeks(text: string): Map<number, Buffer> {
  const keks = new Map<number, Buffer>();
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) continue;
    const m = /^v(\d{1,6})\s+([A-Za-z0-9+/=_-]+)$/.exec(trimmed);
    const key = m ? Buffer.from(m[2] as string, "base64") : undefined;
    if (!m || key?.length !== 32) {
      throw new MeshError(
        Code.FailedPrecondition,
        "the data-kek secret must hold lines `v<N> <base64 of 32 random bytes>`",
      );
    }
    keks.set(Number(m[1]), key);
  }
  if (keks.size === 0) throw new MeshError(Code.FailedPrecondition, "the data-kek secret is empty");
  return keks;
}

function kekLine(version: number): string {
  return `v${version} ${randomBytes(32).toString("base64")}`;
}

/** Adds a new newest KEK version; returns it. Data keys wrapped before stay unwrappable. */
export async function rotateFileKek(secrets: SecretStore): Promise<number> {
  const text = (await secrets.get("data-kek")) ?? (await secrets.create("data-kek", kekLine(1)));
  const newest = Math.max(...parseKeks(text).keys());
  await secrets.put("data-kek", `${text.trimEnd()}\n${kekLine(newest + 1)}`);
  return newest + 1;
}

export function fileKeyWrapper(secrets: SecretStore): KeyWrapper {
  const keks = async () => {
    const text = (await secrets.get("data-kek")) ?? (await secrets.create("data-kek", kekLine(1)));
    return parseKeks(text);
  };
  const wrap = async (dataKey: Buffer) => {
    const all = await keks();
    const version = Math.max(...all.keys());
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", all.get(version) as Buffer, iv);
    cipher.setAAD(aad);
    const body = Buffer.concat([iv, cipher.update(dataKey), cipher.final(), cipher.getAuthTag()]);
    return `kek:v${version}:${body.toString("base64")}`;
  };
  const unwrap = async (wrapped: string) => {
    const m = /^kek:v(\d+):([A-Za-z0-9+/=]+)$/.exec(wrapped);
    if (!m) throw new MeshError(Code.FailedPrecondition, "not a data key wrapped by a file KEK");
    const kek = (await keks()).get(Number(m[1]));
    if (!kek) {
      throw new MeshError(
        Code.FailedPrecondition,
        `data key wrapped by KEK v${m[1]}, which the data-kek secret no longer holds`,
      );
    }
    const body = Buffer.from(m[2] as string, "base64");
    try {
      const decipher = createDecipheriv("aes-256-gcm", kek, body.subarray(0, 12));
      decipher.setAAD(aad);
      decipher.setAuthTag(body.subarray(body.length - 16));
      return Buffer.concat([
        decipher.update(body.subarray(12, body.length - 16)),
        decipher.final(),
      ]);
    } catch {
      throw new MeshError(Code.FailedPrecondition, "a wrapped data key failed authentication");
    }
  };
  return {
    kind: "file",
    wrap,
    unwrap,
    async rewrap(wrapped) {
      return wrap(await unwrap(wrapped));
    },
  };
}
