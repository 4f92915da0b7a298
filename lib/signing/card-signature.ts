/**
 * Signed agent cards (ADR-015): an Ed25519 signature over the card's canonical
 * JSON — its proto JSON form without `signature`, keys sorted, no whitespace —
 * so a signer and the registry agree on the bytes whatever language or field
 * order built the card. The registry verifies against the trust roots
 * (`card-trust.ts`); which capabilities need which signers is the policy's.
 *
 * @example
 * const { privateKeyPem, publicKeyPem } = generateSigningKey();
 * const signed = signCard(card, { signer: "acme-release", privateKeyPem });
 * verifyCard(signed, trustOf({ "acme-release": publicKeyPem })); // { status: "valid", signer: "acme-release" }
 */

import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { clone, create, toJson } from "@bufbuild/protobuf";
import {
  type AgentCard,
  AgentCardSchema,
  CardSignatureSchema,
} from "../../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { canonicalJson } from "../store/canonical-json.js";

/** What the registry concluded about a card's signature; `status` goes into the policy input. */
export type CardSignatureCheck =
  | { status: "valid"; signer: string }
  | { status: "unsigned"; signer: "" }
  | { status: "unknown_signer"; signer: string }
  | { status: "invalid"; signer: string; reason: string };

/** Public keys by signer name: the mesh's trust roots for cards. */
export interface CardTrust {
  publicKey(signer: string): KeyObject | undefined;
  signers(): string[];
}

/** The bytes a card's signature covers. */
export function cardSigningPayload(card: AgentCard): Uint8Array {
  const unsigned = clone(AgentCardSchema, card);
  unsigned.signature = undefined;
  return new TextEncoder().encode(canonicalJson(toJson(AgentCardSchema, unsigned)));
}

/** A new Ed25519 key pair as PEM (PKCS#8 private, SPKI public). */
export function generateSigningKey(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/** The card with its signature by `signer` (any previous signature replaced). */
export function signCard(
  card: AgentCard,
  key: { signer: string; privateKeyPem: string },
): AgentCard {
  const privateKey = parseKey(() => createPrivateKey(key.privateKeyPem), "private");
  if (privateKey.asymmetricKeyType !== "ed25519") {
    throw new MeshError(Code.InvalidArgument, "the signing key is not an Ed25519 private key");
  }
  const signature = sign(null, cardSigningPayload(card), privateKey).toString("base64");
  const signed = clone(AgentCardSchema, card);
  signed.signature = create(CardSignatureSchema, { signer: key.signer, signature });
  return signed;
}

/** Checks a card's signature against the trust roots; never throws. */
export function verifyCard(card: AgentCard, trust: CardTrust): CardSignatureCheck {
  const sig = card.signature;
  if (sig === undefined || (sig.signer === "" && sig.signature === "")) {
    return { status: "unsigned", signer: "" };
  }
  const key = trust.publicKey(sig.signer);
  if (key === undefined) return { status: "unknown_signer", signer: sig.signer };
  const bytes = Buffer.from(sig.signature, "base64");
  if (bytes.length !== 64 || bytes.toString("base64") !== sig.signature) {
    return { status: "invalid", signer: sig.signer, reason: "not a base64 Ed25519 signature" };
  }
  return verify(null, cardSigningPayload(card), key, bytes)
    ? { status: "valid", signer: sig.signer }
    : {
        status: "invalid",
        signer: sig.signer,
        reason: `the signature does not match the card (was it changed after signing?)`,
      };
}

/** Trust roots from signer name → public key PEM. */
export function trustOf(publicKeys: Record<string, string>): CardTrust {
  const keys = new Map<string, KeyObject>();
  for (const [signer, pem] of Object.entries(publicKeys)) {
    const key = parseKey(() => createPublicKey(pem), `public (signer ${signer})`);
    if (key.asymmetricKeyType !== "ed25519") {
      throw new MeshError(Code.InvalidArgument, `signer ${signer}'s key is not an Ed25519 key`);
    }
    keys.set(signer, key);
  }
  return { publicKey: (signer) => keys.get(signer), signers: () => [...keys.keys()].sort() };
}

function parseKey(read: () => KeyObject, what: string): KeyObject {
  try {
    return read();
  } catch (err) {
    throw new MeshError(Code.InvalidArgument, `unreadable ${what} key: ${(err as Error).message}`);
  }
}
