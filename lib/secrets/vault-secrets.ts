/**
 * The `vault` secrets provider, through node-vault: static secrets from a KV
 * v2 engine (`<kv mount>/data/<prefix>/<name>`, the value in the field
 * `value`), data keys wrapped by a Transit key, login by token, Kubernetes
 * service account or AppRole, the token renewed at half its TTL (a new login
 * when it can no longer be renewed), values served from memory for a short
 * while and a rotation (a new KV version, seen in the secret's metadata)
 * handed to subscribers without a restart. A Vault that does not answer at
 * boot is a clear UNAVAILABLE naming `VAULT_ADDR`; one that stops answering
 * later makes `status()` not ready while the last values keep serving.
 *
 * @example
 * const secrets = await openVaultSecrets({ addr: "https://vault:8200", auth: { method: "kubernetes", role: "agentmesh", jwtFile } });
 * await secrets.require("database-url");
 */
import { readFile } from "node:fs/promises";
import nodeVault from "node-vault";
import { Code, MeshError } from "../errors/mesh-error.js";
import {
  type KeyWrapper,
  missingSecret,
  type SecretName,
  type SecretStore,
  type SecretsStatus,
} from "./secret-store.js";

export type VaultAuth =
  | { method: "token"; token: string }
  | { method: "kubernetes"; role: string; jwtFile: string; mount?: string }
  | { method: "approle"; roleId: string; secretIdFile?: string; mount?: string };

export interface VaultSecretsOptions {
  addr: string;
  auth: VaultAuth;
  /** Default `secret`. */
  kvMount?: string;
  /** Default `agentmesh`. */
  kvPrefix?: string;
  /** Default `transit`. */
  transitMount?: string;
  /** Default `agentmesh`. */
  transitKey?: string;
  /** How long a value is served from memory; also how often watched secrets are checked. Default 30000 ms. */
  cacheMs?: number;
  /** One request's limit. Default 5000 ms. */
  timeoutMs?: number;
  /** Shortest wait between renewals (tests use short-lived tokens). Default 1000 ms. */
  minRenewMs?: number;
}

interface Cached {
  value: string | undefined;
  version: number;
  at: number;
}

type VaultClient = ReturnType<typeof nodeVault>;

function statusOf(err: unknown): number | undefined {
  return (err as { response?: { statusCode?: number } })?.response?.statusCode;
}

/** Logs in, checks the token, and starts renewing it. UNAVAILABLE when Vault does not answer. */
export async function openVaultSecrets(options: VaultSecretsOptions): Promise<VaultSecrets> {
  const secrets = new VaultSecrets(options);
  try {
    await secrets.login();
  } catch (err) {
    await secrets.close();
    throw err;
  }
  return secrets;
}

export class VaultSecrets implements SecretStore {
  readonly provider = "vault" as const;
  readonly keys: KeyWrapper;
  readonly #options: Required<Omit<VaultSecretsOptions, "auth" | "addr">> & VaultSecretsOptions;
  readonly #client: VaultClient;
  readonly #cache = new Map<SecretName, Cached>();
  readonly #listeners = new Map<SecretName, Set<(value: string | undefined) => void>>();
  #status: SecretsStatus = { ready: false, error: "not logged in yet" };
  #renewTimer: NodeJS.Timeout | undefined;
  #watchTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** How many times the token was renewed and logins made (for tests and metrics). */
  readonly counts = { renewals: 0, logins: 0 };

  /** @internal use `openVaultSecrets()` */
  constructor(options: VaultSecretsOptions) {
    this.#options = {
      kvMount: "secret",
      kvPrefix: "agentmesh",
      transitMount: "transit",
      transitKey: "agentmesh",
      cacheMs: 30_000,
      timeoutMs: 5000,
      minRenewMs: 1000,
      ...options,
    };
    this.#client = nodeVault({
      endpoint: options.addr,
      // Never fall back to VAULT_TOKEN from the environment behind our back.
      token: options.auth.method === "token" ? options.auth.token : "",
      requestOptions: { timeout: this.#options.timeoutMs },
    });
    this.keys = transitKeyWrapper(this.#client, this.#options, (err) => this.#unreachable(err));
  }

  /** Logs in (or checks the given token), then keeps the token alive. */
  async login(): Promise<void> {
    const auth = this.#options.auth;
    try {
      if (auth.method === "kubernetes") {
        const jwt = (await readFile(auth.jwtFile, "utf8")).trim();
        await this.#client.kubernetesLogin({
          role: auth.role,
          jwt,
          mount_point: auth.mount ?? "kubernetes",
        });
      } else if (auth.method === "approle") {
        const secretId = auth.secretIdFile
          ? (await readFile(auth.secretIdFile, "utf8")).trim()
          : undefined;
        await this.#client.approleLogin({
          role_id: auth.roleId,
          ...(secretId ? { secret_id: secretId } : {}),
          mount_point: auth.mount ?? "approle",
        });
      }
      this.counts.logins++;
      const self = await this.#client.tokenLookupSelf();
      this.#status = { ready: true };
      this.#scheduleRenewal(Number(self?.data?.ttl ?? 0), Boolean(self?.data?.renewable));
    } catch (err) {
      throw this.#unreachable(err, "log in to");
    }
  }

  /** A MeshError for a failed call, and not-ready when Vault did not answer at all. */
  #unreachable(err: unknown, doing = "reach"): MeshError {
    const status = statusOf(err);
    const message = (err as Error)?.message ?? String(err);
    if (status === undefined) {
      this.#status = { ready: false, error: `Vault at ${this.#options.addr}: ${message}` };
      return new MeshError(
        Code.Unavailable,
        `cannot ${doing} Vault at ${this.#options.addr} (VAULT_ADDR): ${message}`,
        { cause: err },
      );
    }
    const code = status === 403 || status === 401 ? Code.PermissionDenied : Code.FailedPrecondition;
    return new MeshError(code, `Vault at ${this.#options.addr} refused: ${status} ${message}`, {
      cause: err,
    });
  }

  #scheduleRenewal(ttlSeconds: number, renewable: boolean): void {
    if (this.#closed || ttlSeconds <= 0) return; // a root token (ttl 0) never expires
    const auth = this.#options.auth;
    // A token we cannot renew and cannot log in again for: nothing to schedule.
    if (!renewable && auth.method === "token") return;
    const delay = Math.max(this.#options.minRenewMs, (ttlSeconds * 1000) / 2);
    this.#renewTimer = setTimeout(() => void this.#renew(), delay);
    this.#renewTimer.unref();
  }

  async #renew(): Promise<void> {
    if (this.#closed) return;
    try {
      const res = await this.#client.tokenRenewSelf();
      this.counts.renewals++;
      this.#status = { ready: true };
      this.#scheduleRenewal(Number(res?.auth?.lease_duration ?? 0), Boolean(res?.auth?.renewable));
    } catch (err) {
      if (this.#options.auth.method !== "token" && statusOf(err) !== undefined) {
        // Past its max TTL: log in again with the same credentials.
        await this.login().catch((e: unknown) => this.#retryRenewal(e));
      } else {
        this.#retryRenewal(err);
      }
    }
  }

  #retryRenewal(err: unknown): void {
    if (statusOf(err) === undefined) this.#unreachable(err);
    else this.#status = { ready: false, error: `Vault token: ${(err as Error).message}` };
    this.#renewTimer = setTimeout(() => void this.#renew(), this.#options.minRenewMs);
    this.#renewTimer.unref();
  }

  #kvPath(kind: "data" | "metadata", name: SecretName): string {
    const { kvMount, kvPrefix } = this.#options;
    return `${kvMount}/${kind}/${kvPrefix ? `${kvPrefix}/` : ""}${name}`;
  }

  async #fetch(name: SecretName): Promise<Cached> {
    try {
      const res = await this.#client.read(this.#kvPath("data", name));
      const value = res?.data?.data?.value;
      const cached: Cached = {
        value: typeof value === "string" ? value : undefined,
        version: Number(res?.data?.metadata?.version ?? 0),
        at: Date.now(),
      };
      this.#status = { ready: true };
      return cached;
    } catch (err) {
      if (statusOf(err) === 404) return { value: undefined, version: 0, at: Date.now() };
      throw this.#unreachable(err, `read ${name} from`);
    }
  }

  async get(name: SecretName): Promise<string | undefined> {
    const hit = this.#cache.get(name);
    if (hit && Date.now() - hit.at < this.#options.cacheMs) return hit.value;
    try {
      const fresh = await this.#fetch(name);
      this.#cache.set(name, fresh);
      return fresh.value;
    } catch (err) {
      // Vault away after boot: the last value keeps the process serving, not ready meanwhile.
      if (hit && err instanceof MeshError && err.code === Code.Unavailable) return hit.value;
      throw err;
    }
  }

  async require(name: SecretName): Promise<string> {
    const value = await this.get(name);
    if (value === undefined || value === "") throw missingSecret(name, this.location(name));
    return value;
  }

  async create(name: SecretName, _value?: string): Promise<string> {
    const existing = await this.get(name);
    if (existing) return existing;
    throw missingSecret(name, this.location(name));
  }

  async put(name: SecretName, _value?: string): Promise<void> {
    throw new MeshError(
      Code.FailedPrecondition,
      `secrets in Vault are written by the operator: write ${this.location(name)} (field \`value\`)`,
    );
  }

  location(name: SecretName): string {
    return `Vault ${this.#options.addr} KV ${this.#kvPath("data", name)}`;
  }

  subscribe(name: SecretName, onChange: (value: string | undefined) => void): () => void {
    let set = this.#listeners.get(name);
    if (!set) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(onChange);
    if (!this.#watchTimer && !this.#closed) {
      this.#watchTimer = setInterval(() => void this.#checkVersions(), this.#options.cacheMs);
      this.#watchTimer.unref();
    }
    return () => set.delete(onChange);
  }

  /** Reads each watched secret's metadata; a new current version is fetched and announced. */
  async #checkVersions(): Promise<void> {
    for (const [name, listeners] of this.#listeners) {
      if (listeners.size === 0) continue;
      try {
        const meta = await this.#client.read(this.#kvPath("metadata", name));
        const current = Number(meta?.data?.current_version ?? 0);
        const known = this.#cache.get(name);
        if (known && known.version === current) {
          known.at = Date.now();
          continue;
        }
        const fresh = await this.#fetch(name);
        this.#cache.set(name, fresh);
        if (!known || fresh.value !== known.value) for (const fn of listeners) fn(fresh.value);
      } catch (err) {
        if (statusOf(err) === undefined) this.#unreachable(err);
      }
    }
  }

  status(): SecretsStatus {
    return this.#status;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#renewTimer) clearTimeout(this.#renewTimer);
    if (this.#watchTimer) clearInterval(this.#watchTimer);
  }
}

function transitKeyWrapper(
  client: VaultClient,
  options: { transitMount: string; transitKey: string },
  failed: (err: unknown) => MeshError,
): KeyWrapper {
  const path = (op: string) => `${options.transitMount}/${op}/${options.transitKey}`;
  const call = async (op: string, body: Record<string, string>) => {
    try {
      return (await client.write(path(op), body))?.data ?? {};
    } catch (err) {
      throw failed(err);
    }
  };
  const ciphertext = (data: { ciphertext?: unknown }) => {
    if (typeof data.ciphertext !== "string" || !data.ciphertext.startsWith("vault:v")) {
      throw new MeshError(Code.Internal, "Vault Transit answered without a ciphertext");
    }
    return data.ciphertext;
  };
  return {
    kind: "vault-transit",
    async wrap(dataKey) {
      return ciphertext(await call("encrypt", { plaintext: dataKey.toString("base64") }));
    },
    async unwrap(wrapped) {
      const data = await call("decrypt", { ciphertext: wrapped });
      if (typeof data.plaintext !== "string") {
        throw new MeshError(Code.Internal, "Vault Transit answered without a plaintext");
      }
      return Buffer.from(data.plaintext, "base64");
    },
    async rewrap(wrapped) {
      return ciphertext(await call("rewrap", { ciphertext: wrapped }));
    },
  };
}
