/**
 * The secret store the settings describe (`AGENTMESH_SECRETS_PROVIDER` and
 * the `VAULT_*`/`AGENTMESH_VAULT_*` variables), and the one a process shares.
 *
 * @example
 * const secrets = await processSecrets(); // opened once per process
 * const url = await secrets.get("database-url");
 */
import { resolve } from "node:path";
import { settings } from "../config/settings.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { openFileSecrets } from "./file-secrets.js";
import type { SecretStore } from "./secret-store.js";
import { openVaultSecrets, type VaultAuth } from "./vault-secrets.js";

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Opens the provider the environment names (`home`: the state directory the
 * file provider falls back to, default `AGENTMESH_HOME`). Vault unreachable: UNAVAILABLE.
 */
export async function openSecrets(
  env: Env = process.env,
  home = resolve(settings.home.read(env)),
): Promise<SecretStore> {
  if (settings.secretsProvider.read(env) === "file") return openFileSecrets({ home, env });
  const addr = settings.vaultAddr.read(env);
  if (!addr) {
    throw new MeshError(
      Code.FailedPrecondition,
      `${settings.secretsProvider.name}=vault needs ${settings.vaultAddr.name}`,
    );
  }
  return openVaultSecrets({
    addr,
    auth: vaultAuthFrom(env),
    kvMount: settings.vaultKvMount.read(env),
    kvPrefix: settings.vaultKvPrefix.read(env),
    transitMount: settings.vaultTransitMount.read(env),
    transitKey: settings.vaultTransitKey.read(env),
    cacheMs: settings.vaultCacheMs.read(env) ?? 30_000,
  });
}

function vaultAuthFrom(env: Env): VaultAuth {
  const method = settings.vaultAuth.read(env);
  const mount = settings.vaultAuthMount.read(env);
  if (method === "kubernetes") {
    return {
      method,
      role: settings.vaultRole.read(env),
      jwtFile: settings.vaultKubernetesTokenFile.read(env),
      ...(mount ? { mount } : {}),
    };
  }
  if (method === "approle") {
    const roleId = settings.vaultRoleId.read(env);
    if (!roleId) {
      throw new MeshError(
        Code.FailedPrecondition,
        `${settings.vaultAuth.name}=approle needs ${settings.vaultRoleId.name}`,
      );
    }
    const secretIdFile = settings.vaultSecretIdFile.read(env);
    return {
      method,
      roleId,
      ...(secretIdFile ? { secretIdFile } : {}),
      ...(mount ? { mount } : {}),
    };
  }
  const token = settings.vaultToken.read(env);
  if (!token) {
    throw new MeshError(
      Code.FailedPrecondition,
      `${settings.vaultAuth.name}=token needs ${settings.vaultToken.name}`,
    );
  }
  return { method, token };
}

let shared: Promise<SecretStore> | undefined;

/** The process's secret store, opened from `process.env` on first use (a failed open is retried next call). */
export function processSecrets(): Promise<SecretStore> {
  shared ??= openSecrets().catch((err: unknown) => {
    shared = undefined;
    throw err;
  });
  return shared;
}
