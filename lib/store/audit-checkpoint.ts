/**
 * Signed checkpoints of the audit chain's head, kept outside the database.
 *
 * The hash chain (`audit-log.ts`) shows any edit to a row, but whoever owns
 * the database can delete the newest rows and reset the head, or recompute
 * the whole chain after a rewrite, and the chain still fits. A checkpoint is
 * the head's sequence and hash signed with an Ed25519 key the database never
 * sees (a key file created with mode 0600), appended as one JSON line to a
 * file outside the database. `verifyAuditLog` walks the chain and checks it
 * against every checkpoint: a chain that ends before a checkpoint's sequence
 * was truncated, a row whose hash differs from a checkpoint's was rewritten,
 * and a checkpoint whose signature does not verify under the trusted key was
 * forged. Rows after the newest checkpoint are covered by the chain alone
 * until the next one (`intervalMs`, and at shutdown).
 *
 * @example
 * const checkpoints = await startAuditCheckpoints({ audit: store.audit, secrets, filePath });
 * // ... at shutdown, one last checkpoint:
 * await checkpoints.close();
 * const report = await verifyAuditLog(store.audit, { publicKey, filePath });
 * if (!report.ok) console.error(`audit log tampered: ${report.reason} at row ${report.seq}`);
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { mkdir, open, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { settings } from "../config/settings.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import type { Logger } from "../log/logger.js";
import type { SecretStore } from "../secrets/secret-store.js";
import type { AuditLog, AuditVerification } from "./audit-log.js";
import { errorCode } from "./store-error.js";

/** PostgreSQL's "relation does not exist". */
const undefinedTable = "42P01";

/**
 * Where a process keeps its checkpoint file, and how often it writes: the
 * settings, else under `home`. (The key is the `audit-checkpoint-key` secret.)
 */
export function auditCheckpointSettings(
  home: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): { filePath: string; intervalMs: number } {
  return {
    filePath: resolve(
      settings.auditCheckpointFile.read(env) ?? join(home, "audit-checkpoints.jsonl"),
    ),
    intervalMs: settings.auditCheckpointIntervalMs.read(env) ?? 10_000,
  };
}

/** One line of the checkpoint file. */
export interface AuditCheckpoint {
  /** Format version. */
  v: 1;
  /** Sequence of the chain's head when signed. */
  seq: number;
  /** Hash of that row (the genesis hash for an empty chain). */
  hash: string;
  /** When it was signed, ISO 8601. */
  time: string;
  /** `keyIdOf` the signing key. */
  keyId: string;
  /** Ed25519 signature of `checkpointText`, base64. */
  sig: string;
}

/** What is signed: every field but the signature, in a fixed text form. */
export function checkpointText(c: Omit<AuditCheckpoint, "sig">): string {
  return `agentmesh.audit.checkpoint.v${c.v}\n${c.seq}\n${c.hash}\n${c.time}\n${c.keyId}`;
}

/** A short, stable name of a public key: sha256 of its DER, first 16 hex digits. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("hex").slice(0, 16);
}

/** Signs the head `{seq, hash}`. */
export function signCheckpoint(
  head: { seq: number; hash: string },
  privateKey: KeyObject,
  time = new Date(),
): AuditCheckpoint {
  const unsigned = {
    v: 1 as const,
    seq: head.seq,
    hash: head.hash,
    time: time.toISOString(),
    keyId: keyIdOf(createPublicKey(privateKey)),
  };
  const sig = sign(null, Buffer.from(checkpointText(unsigned)), privateKey).toString("base64");
  return { ...unsigned, sig };
}

/** Whether `c` was signed by `publicKey` and is well formed. */
export function checkpointValid(c: AuditCheckpoint, publicKey: KeyObject): boolean {
  if (c.keyId !== keyIdOf(publicKey)) return false;
  try {
    return verify(null, Buffer.from(checkpointText(c)), publicKey, Buffer.from(c.sig, "base64"));
  } catch {
    return false;
  }
}

/**
 * The signing key (the `audit-checkpoint-key` secret), created (Ed25519,
 * PKCS#8 PEM) when the store holds none yet; of two processes creating it at
 * once, one key wins whole. With the file provider its public half is also
 * written beside it as `.pub` for verifiers on other machines.
 */
export async function loadOrCreateCheckpointKey(secrets: SecretStore): Promise<KeyObject> {
  const name = "audit-checkpoint-key";
  const existing = await secrets.get(name);
  if (existing) return privateKeyFrom(existing, secrets.location(name));
  const { privateKey } = generateKeyPairSync("ed25519");
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  const stored = privateKeyFrom(await secrets.create(name, pem), secrets.location(name));
  if (secrets.provider === "file") {
    await writeFile(
      `${secrets.location(name)}.pub`,
      createPublicKey(stored).export({ type: "spki", format: "pem" }) as string,
      { mode: 0o644 },
    );
  }
  return stored;
}

/** The public key to verify with, from the key the secret store holds. */
export async function checkpointPublicKey(secrets: SecretStore): Promise<KeyObject> {
  const name = "audit-checkpoint-key";
  return createPublicKey(privateKeyFrom(await secrets.require(name), secrets.location(name)));
}

function privateKeyFrom(pem: string, path: string): KeyObject {
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== "ed25519") throw new Error(`${key.asymmetricKeyType} key`);
    return key;
  } catch (err) {
    throw new MeshError(
      Code.FailedPrecondition,
      `audit checkpoint key ${path} is not an Ed25519 private key: ${(err as Error).message}`,
    );
  }
}

/** The public key to verify with: from a private key file, or a public key file (`.pub`). */
export async function readCheckpointPublicKey(path: string): Promise<KeyObject> {
  const pem = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
    throw new MeshError(
      Code.FailedPrecondition,
      `cannot read the audit checkpoint key ${path}: ${err.code ?? err.message}`,
    );
  });
  if (pem.includes("PRIVATE KEY")) return createPublicKey(privateKeyFrom(pem, path));
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== "ed25519") {
    throw new MeshError(Code.FailedPrecondition, `${path} is not an Ed25519 public key`);
  }
  return key;
}

/** Appends one checkpoint as a JSON line (the file is created 0600 and flushed to disk). */
export async function appendCheckpoint(path: string, c: AuditCheckpoint): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const file = await open(path, "a", 0o600);
  try {
    await file.appendFile(`${JSON.stringify(c)}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** A line of the checkpoint file that is not a checkpoint: its number and why. */
export interface BadCheckpointLine {
  line: number;
  problem: string;
}

/**
 * The checkpoints in the file, in file order; none when it does not exist.
 * A last line without its newline (a write cut short by a crash) is ignored.
 */
export async function readCheckpoints(
  path: string,
): Promise<{ checkpoints: (AuditCheckpoint & { line: number })[]; bad: BadCheckpointLine[] }> {
  const text = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return "";
    throw err;
  });
  const lines = text.split("\n");
  lines.pop(); // after the last newline: empty, or a torn write
  const checkpoints: (AuditCheckpoint & { line: number })[] = [];
  const bad: BadCheckpointLine[] = [];
  lines.forEach((raw, i) => {
    if (raw.trim() === "") return;
    try {
      const c = JSON.parse(raw) as AuditCheckpoint;
      if (
        c.v !== 1 ||
        !Number.isSafeInteger(c.seq) ||
        c.seq < 0 ||
        typeof c.hash !== "string" ||
        !/^[0-9a-f]{64}$/.test(c.hash) ||
        typeof c.time !== "string" ||
        typeof c.keyId !== "string" ||
        typeof c.sig !== "string"
      ) {
        bad.push({ line: i + 1, problem: "not a checkpoint" });
        return;
      }
      checkpoints.push({ ...c, line: i + 1 });
    } catch {
      bad.push({ line: i + 1, problem: "not JSON" });
    }
  });
  return { checkpoints, bad };
}

/** Outcome of `verifyAuditLog`. */
export type AuditReport =
  | (Extract<AuditVerification, { ok: true }> & {
      /** The newest checkpoint the chain was checked against; null when there is none. */
      checkpoint: { seq: number; time: string; count: number } | null;
    })
  | (Extract<AuditVerification, { ok: false }> & { detail?: string })
  | {
      ok: false;
      seq: number;
      reason: "truncated" | "rewritten" | "checkpoint invalid";
      rows: number;
      /** What was found, in words. */
      detail: string;
    };

export interface VerifyAuditOptions {
  /** The checkpoint file. */
  filePath: string;
  /** The key file: the private key, or its `.pub` (one of `keyPath` and `publicKey`). */
  keyPath?: string;
  /**
   * The public key itself, or how to get it (`() => checkpointPublicKey(secrets)`):
   * asked for only when the file holds checkpoints, so a mesh that never wrote
   * one (and so has no key yet) verifies its chain alone.
   */
  publicKey?: KeyObject | (() => Promise<KeyObject>);
}

/** Walks the chain and checks it against every checkpoint in the file. */
export async function verifyAuditLog(
  audit: AuditLog,
  options: VerifyAuditOptions,
): Promise<AuditReport> {
  const { checkpoints, bad } = await readCheckpoints(options.filePath);
  const firstBad = bad[0];
  if (firstBad) {
    return {
      ok: false,
      seq: 0,
      reason: "checkpoint invalid",
      rows: 0,
      detail: `${options.filePath} line ${firstBad.line}: ${firstBad.problem}`,
    };
  }
  const publicKey = !checkpoints.length
    ? undefined
    : typeof options.publicKey === "function"
      ? await options.publicKey()
      : (options.publicKey ?? (await readCheckpointPublicKey(options.keyPath ?? "")));
  const keyName = options.keyPath ?? "the audit checkpoint key";
  const expected = new Map<number, { hash: string; line: number }>();
  for (const c of checkpoints) {
    if (!checkpointValid(c, publicKey as KeyObject)) {
      return {
        ok: false,
        seq: c.seq,
        reason: "checkpoint invalid",
        rows: 0,
        detail: `${options.filePath} line ${c.line}: the signature does not verify under ${keyName}`,
      };
    }
    expected.set(c.seq, { hash: c.hash, line: c.line });
  }
  let rewritten: { seq: number; line: number } | undefined;
  const chain = await audit.verify({
    onRow: (row) => {
      const want = expected.get(row.seq);
      if (want && want.hash !== row.hash) {
        rewritten = { seq: row.seq, line: want.line };
        return false;
      }
      return true;
    },
  });
  if (rewritten) {
    return {
      ok: false,
      seq: rewritten.seq,
      reason: "rewritten",
      rows: rewritten.seq - 1,
      detail: `row ${rewritten.seq} has another hash than the checkpoint on line ${rewritten.line} signed: the chain was recomputed`,
    };
  }
  if (!chain.ok) return chain;
  const newest = checkpoints.reduce<(typeof checkpoints)[number] | undefined>(
    (a, c) => (a === undefined || c.seq > a.seq ? c : a),
    undefined,
  );
  if (newest && newest.seq > chain.headSeq) {
    return {
      ok: false,
      seq: chain.headSeq + 1,
      reason: "truncated",
      rows: chain.rows,
      detail: `the chain ends at row ${chain.headSeq}, but the checkpoint of ${newest.time} (line ${newest.line}) signed row ${newest.seq}: rows were deleted`,
    };
  }
  return {
    ...chain,
    checkpoint: newest ? { seq: newest.seq, time: newest.time, count: checkpoints.length } : null,
  };
}

export interface AuditCheckpointsOptions {
  audit: AuditLog;
  /** Holds the signing key (`audit-checkpoint-key`, created when missing). */
  secrets: SecretStore;
  /** The checkpoint file (appended to). */
  filePath: string;
  /** How often the head is checkpointed when it moved. Default 10 s. */
  intervalMs?: number;
  log?: Logger;
}

export interface AuditCheckpoints {
  /** Signs and appends the current head now, if it moved since the last checkpoint. */
  checkpoint(): Promise<AuditCheckpoint | undefined>;
  /** Stops the timer after one last checkpoint. */
  close(): Promise<void>;
}

/** Checkpoints the audit head every `intervalMs` and at `close()`. */
export async function startAuditCheckpoints(
  options: AuditCheckpointsOptions,
): Promise<AuditCheckpoints> {
  const key = await loadOrCreateCheckpointKey(options.secrets);
  const { checkpoints } = await readCheckpoints(options.filePath);
  const last = checkpoints[checkpoints.length - 1];
  let lastSigned = last ? `${last.seq}/${last.hash}` : "";
  let running: Promise<AuditCheckpoint | undefined> | undefined;
  const checkpoint = () => {
    running ??= (async () => {
      try {
        const head = await options.audit.head();
        if (`${head.seq}/${head.hash}` === lastSigned) return undefined;
        const c = signCheckpoint(head, key);
        await appendCheckpoint(options.filePath, c);
        lastSigned = `${c.seq}/${c.hash}`;
        return c;
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  const tick = () =>
    checkpoint().catch((err: unknown) => {
      // A schema dropped under a running process (test meshes do at the end) has no head to sign.
      const dropped = errorCode((err as { cause?: unknown }).cause) === undefinedTable;
      options.log?.[dropped ? "debug" : "warn"]({ err }, "could not write an audit checkpoint");
    });
  const timer = setInterval(tick, options.intervalMs ?? 10_000);
  timer.unref();
  await tick();
  let closed: Promise<void> | undefined;
  return {
    checkpoint,
    close() {
      closed ??= (async () => {
        clearInterval(timer);
        await running?.catch(() => undefined);
        await tick();
      })();
      return closed;
    },
  };
}
