/**
 * What an operator does with a tenant's data keys: turn encryption at rest
 * on, rotate (re-wrap the keys under the newest key-encryption key, a new
 * data key for new writes) and erase (crypto-shredding: the keys are
 * destroyed, so every sealed payload of the tenant is unreadable from then
 * on, in this database and in any copy of it made after the key-encryption
 * key that wrapped them is retired). Each is kept in the audit log, and
 * announced to every process on the database (`TenantKeyFeed`), which forgets
 * what it cached of the tenant at once.
 *
 * @example
 * await setTenantEncryption(store, "acme", "sensitive", "ops/alice");
 * await eraseTenant(store, "acme", "ops/alice");
 */
import { adminActionEvent } from "./audit-log.js";
import type { EncryptionMode } from "./payload-cipher.js";
import type { Store } from "./store.js";

export async function setTenantEncryption(
  store: Store,
  tenantId: string,
  mode: EncryptionMode,
  actor: string,
): Promise<void> {
  await store.tenants.setEncryption(tenantId, mode);
  await store.cipher.changed(tenantId);
  await store.audit.append(
    adminActionEvent({
      actor,
      what: "tenant.encryption_set",
      resource: `tenant/${tenantId}`,
      tenantId,
      details: { encryption: mode },
    }),
  );
}

/** Re-wraps the tenant's data keys and starts a new one; returns the new key version. */
export async function rotateTenantKeys(
  store: Store,
  tenantId: string,
  actor: string,
): Promise<number> {
  await store.tenants.get(tenantId);
  const version = await store.cipher.rotate(tenantId);
  await store.cipher.changed(tenantId);
  await store.audit.append(
    adminActionEvent({
      actor,
      what: "tenant.keys_rotated",
      resource: `tenant/${tenantId}`,
      tenantId,
      details: { dataKeyVersion: version },
    }),
  );
  return version;
}

/** Destroys the tenant's data keys; returns how many were destroyed. */
export async function eraseTenant(store: Store, tenantId: string, actor: string): Promise<number> {
  await store.tenants.get(tenantId);
  const destroyed = await store.cipher.erase(tenantId);
  await store.tenants.markErased(tenantId);
  // Every process forgets the keys it holds before this returns.
  await store.cipher.changed(tenantId);
  await store.audit.append(
    adminActionEvent({
      actor,
      what: "tenant.erased",
      resource: `tenant/${tenantId}`,
      tenantId,
      details: { dataKeysDestroyed: destroyed },
    }),
  );
  return destroyed;
}
