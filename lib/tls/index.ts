/**
 * Certificates of the mesh: the dev CA (cert-manager file layout), watched
 * certificate files with rotation, and mTLS credentials for grpc-js.
 *
 * @example
 * await ensureIdentities({ certDir: ".agentmesh/certs", names: ["registry", "executor"] });
 * const certs = await watchCertificates({ dir: ".agentmesh/certs/executor" });
 */
export {
  type CertificateSet,
  CertWatcher,
  readCertificateSet,
  type WatchCertificatesOptions,
  watchCertificates,
} from "./cert-watcher.js";
export {
  type ChannelCredentialsOptions,
  channelCredentials,
  type ServerIdentityCheck,
  serverCredentials,
  spiffeServerCheck,
} from "./credentials.js";
export {
  type CaInfo,
  type CertPaths,
  certFileNames,
  certPaths,
  type EnsuredIdentity,
  type EnsureIdentitiesOptions,
  ensureIdentities,
  type InitCaOptions,
  type IssuedCertificate,
  type IssueOptions,
  initCa,
  issueCertificate,
} from "./dev-ca.js";
