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
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { newApiKey, parseApiKey, verifyApiKeySecret } from "../lib/store/api-key-secret.js";
import type { Store } from "../lib/store/store.js";

export interface BootstrapOptions {
  store: Store;
  /** State directory (`config.home`, default `.agentmesh`). */
  home: string;
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
  const keyPath = join(home, "admin.key");
  const existing = await readFile(keyPath, "utf8").then(
    (s) => s.trim(),
    () => undefined,
  );
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
  await mkdir(home, { recursive: true, mode: 0o700 });
  // Write then rename so a reader never sees half a key; 0600 before any byte lands.
  const tmp = `${keyPath}.${process.pid}.tmp`;
  await writeFile(tmp, `${secret}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, keyPath);
  return { keyPath, secret, created: true };
}
