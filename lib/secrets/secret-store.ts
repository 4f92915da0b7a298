/**
 * One interface for every secret the mesh uses, whatever holds it: files
 * (Kubernetes Secret mounts, `AGENTMESH_HOME`) or Vault. Code asks for a
 * secret by name and never reads one from the environment or a file itself,
 * so moving a deployment to Vault is a setting, not a code change.
 *
 * @example
 * const secrets = await openSecrets(); // AGENTMESH_SECRETS_PROVIDER, file by default
 * const url = await secrets.get("database-url");
 * const stop = secrets.subscribe("jwt-jwks", (jwks) => reloadKeys(jwks));
 * const wrapped = await secrets.keys.wrap(dataKey); // file KEK or Vault Transit
 */
import { Code, MeshError } from "../errors/mesh-error.js";

/** Every secret the mesh reads, by name (the file name under a secrets directory, the KV path under Vault's prefix). */
export const secretNames = [
  "database-url",
  "admin-api-key",
  "audit-checkpoint-key",
  "jwt-jwks",
  "llm-planner-api-key",
  "cli-api-key",
  "data-kek",
] as const;

export type SecretName = (typeof secretNames)[number];

/** What each secret is, for errors and the docs. */
export const secretPurposes: Record<SecretName, string> = {
  "database-url": "PostgreSQL connection string with its password",
  "admin-api-key": "the bootstrap platform-admin API key",
  "audit-checkpoint-key": "Ed25519 key signing audit checkpoints (PKCS#8 PEM)",
  "jwt-jwks": "JWKS of the keys that sign accepted JWTs",
  "llm-planner-api-key": "bearer token of the LLM planner endpoint",
  "cli-api-key": "the API key the agentmesh CLI sends (default: admin-api-key)",
  "data-kek": "key-encryption keys wrapping tenants' data keys (file provider only)",
};

/** Wraps data keys with a key-encryption key that never leaves its holder (a file or Vault Transit). */
export interface KeyWrapper {
  /** `file` or `vault-transit`. */
  readonly kind: string;
  /** The data key encrypted under the newest key-encryption key, as text. */
  wrap(dataKey: Buffer): Promise<string>;
  /** The data key back. FAILED_PRECONDITION when the wrapped text is not ours or was tampered with. */
  unwrap(wrapped: string): Promise<Buffer>;
  /** The same data key wrapped under the newest key-encryption key, never exposing it to the caller. */
  rewrap(wrapped: string): Promise<string>;
}

/** Whether secrets can be served now (a Vault that stopped answering makes this false). */
export interface SecretsStatus {
  ready: boolean;
  /** Why not. */
  error?: string;
}

export interface SecretStore {
  readonly provider: "file" | "vault";
  /** The current value, or undefined when the secret is not set anywhere. */
  get(name: SecretName): Promise<string | undefined>;
  /** The current value; FAILED_PRECONDITION naming where to put it when it is not set. */
  require(name: SecretName): Promise<string>;
  /**
   * Stores a value the mesh generated itself (a bootstrap key, a checkpoint
   * key) unless one exists; returns the value that is stored afterwards (of two
   * processes creating at once, one wins whole). Vault: FAILED_PRECONDITION
   * (secrets there are written by the operator).
   */
  create(name: SecretName, value: string): Promise<string>;
  /** Replaces a value (file provider; Vault: FAILED_PRECONDITION). */
  put(name: SecretName, value: string): Promise<void>;
  /** Where the secret lives, for messages: a file path or a Vault path. Never the value. */
  location(name: SecretName): string;
  /** Calls `onChange` with the new value whenever the secret changes (rotation); returns the unsubscribe. */
  subscribe(name: SecretName, onChange: (value: string | undefined) => void): () => void;
  /** The key wrapper of data keys. */
  readonly keys: KeyWrapper;
  status(): SecretsStatus;
  close(): Promise<void>;
}

export function missingSecret(name: SecretName, where: string): MeshError {
  return new MeshError(
    Code.FailedPrecondition,
    `secret ${name} (${secretPurposes[name]}) is not set: put it at ${where}`,
  );
}
