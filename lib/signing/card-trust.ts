/**
 * The trust roots for signed cards: a JSON file naming each signer's Ed25519
 * public key, `{"signers": {"acme-release": "-----BEGIN PUBLIC KEY-----..."}}`
 * (`AGENTMESH_CARD_SIGNERS_FILE`). Read again when it changes, so adding or
 * revoking a signer needs no restart; a file that stops parsing keeps the last
 * good roots and says so in the log.
 *
 * @example
 * const roots = cardTrustFile("/etc/agentmesh/card-signers.json", log);
 * verifyCard(card, roots.current());
 */
import { readFileSync, statSync } from "node:fs";
import type { Logger } from "../log/logger.js";
import { type CardTrust, trustOf } from "./card-signature.js";

/** Trust roots that may change under a running registry. */
export interface CardTrustSource {
  current(): CardTrust;
}

/** No trusted signers: every signed card is from an unknown signer. */
export const noCardTrust: CardTrustSource = { current: () => trustOf({}) };

/** Parses a signers file's text; throws INVALID_ARGUMENT naming what is wrong. */
export function parseCardTrust(text: string): CardTrust {
  const doc = JSON.parse(text) as { signers?: unknown };
  const signers = doc?.signers;
  if (typeof signers !== "object" || signers === null || Array.isArray(signers)) {
    throw new Error('expected {"signers": {"<name>": "<public key PEM>"}}');
  }
  return trustOf(signers as Record<string, string>);
}

/** Trust roots read from `path`, re-read when its size or modification time changes. */
export function cardTrustFile(path: string, log: Logger): CardTrustSource {
  let seen = "";
  let trust = trustOf({});
  return {
    current() {
      try {
        const s = statSync(path);
        const stamp = `${s.mtimeMs}:${s.size}`;
        if (stamp !== seen) {
          trust = parseCardTrust(readFileSync(path, "utf8"));
          seen = stamp;
          log.info({ path, signers: trust.signers() }, "card signers loaded");
        }
      } catch (err) {
        log.error({ err, path }, "card signers file unreadable; keeping the last good signers");
      }
      return trust;
    },
  };
}
