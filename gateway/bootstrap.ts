/**
 * The first key of a fresh embedded mesh: `agentmesh dev` calls
 * `ensureBootstrapAdmin` on start, which creates the tenant `default` and a
 * platform-admin API key and writes the key to `<home>/admin.key` (mode 0600)
 * — only when that file does not hold a key that still works.
 *
 * @example
 * const { keyPath, created } = await ensureBootstrapAdmin({ store, home: config.home });
 * if (created) log.info(`admin API key written to ${keyPath}`);
 */
import { openFileSecrets } from "../lib/secrets/file-secrets.js";
import type { SecretStore } from "../lib/secrets/secret-store.js";
import { newApiKey, parseApiKey, verifyApiKeySecret } from "../lib/store/api-key-secret.js";
import type { Store } from "../lib/store/store.js";

export interface BootstrapOptions {
  store: Store;
  /** State directory (`config.home`, default `.agentmesh`). */
  home: string;
  /** Holds the `admin-api-key` secret. Default: the file provider under `home` (`<home>/admin.key`). */
  secrets?: SecretStore;
  /** Tenant of the admin key. Default `default`. */
  tenantId?: string;
}

export interface BootstrapResult {
  keyPath: string;
  /** The key (so the dev command can print how to use it); never log it. */
  secret: string;
  /** Whether a new key was made on this call. */
  created: boolean;
}

export async function ensureBootstrapAdmin(options: BootstrapOptions): Promise<BootstrapResult> {
  const { store, home } = options;
  const tenantId = options.tenantId ?? "default";
  const secrets = options.secrets ?? openFileSecrets({ home, pollMs: 0 });
  try {
    return await ensureWith(store, secrets, tenantId);
  } finally {
    if (!options.secrets) await secrets.close();
  }
}

async function ensureWith(
  store: Store,
  secrets: SecretStore,
  tenantId: string,
): Promise<BootstrapResult> {
  const keyPath = secrets.location("admin-api-key");
  const existing = (await secrets.get("admin-api-key"))?.trim();
  if (existing) {
    const parsed = parseApiKey(existing);
    const record = parsed ? await store.tenants.findApiKey(parsed.keyId) : undefined;
    if (
      record &&
      !record.revokedAt &&
      (!record.expiresAt || record.expiresAt.getTime() > Date.now()) &&
      verifyApiKeySecret(existing, record.secretHash)
    ) {
      return { keyPath, secret: existing, created: false };
    }
  }
  if (!(await store.tenants.find(tenantId))) {
    await store.tenants
      .create({ id: tenantId, displayName: "Default tenant" })
      .catch(async (err) => {
        // Another process may have created it first.
        if (!(await store.tenants.find(tenantId))) throw err;
      });
  }
  const { keyId, secret, secretHash } = newApiKey();
  await store
    .tenant(tenantId)
    .apiKeys.create({ keyId, secretHash, name: "bootstrap admin", roles: ["platform.admin"] });
  // Written then renamed into place (0600) so a reader never sees half a key.
  await secrets.put("admin-api-key", secret);
  return { keyPath, secret, created: true };
}
