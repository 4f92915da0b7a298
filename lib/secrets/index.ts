export { fileKeyWrapper, parseKeks, rotateFileKek } from "./file-key-wrapper.js";
export { type FileSecretsOptions, openFileSecrets } from "./file-secrets.js";
export { openSecrets, processSecrets } from "./open-secrets.js";
export {
  type KeyWrapper,
  missingSecret,
  type SecretName,
  type SecretStore,
  type SecretsStatus,
  secretNames,
  secretPurposes,
} from "./secret-store.js";
export {
  openVaultSecrets,
  type VaultAuth,
  VaultSecrets,
  type VaultSecretsOptions,
} from "./vault-secrets.js";
