/**
 * `agentmesh serve gateway`: the public gateway as its own process, with
 * everything a deployment sets from the environment (docs/configuration.md,
 * section Gateway): the TLS listener's certificate files (re-read when they
 * change), JWT issuer/audience/JWKS URL, CORS origins, limits, and the internal
 * services' addresses (`AGENTMESH_<NAME>_ADDR`). Its own `/healthz` and
 * `/readyz` are on the gateway port; `/metrics` and the same probes on the
 * metrics port like every other process.
 */
import type { GatewayOptions } from "../../gateway/start-gateway.js";
import { settings } from "../../lib/config/settings.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";

type Env = Readonly<Record<string, string | undefined>>;

/** The listener, authentication and limit options of the gateway, from the environment. */
export function gatewayOptionsFromEnv(
  env: Env = process.env,
): Pick<
  GatewayOptions,
  | "tls"
  | "allowInsecure"
  | "jwt"
  | "corsOrigins"
  | "limits"
  | "maxRequestBytes"
  | "maxTimeoutMs"
  | "defaultTimeoutMs"
  | "dashboard"
> {
  const certFile = settings.gatewayTlsCert.read(env);
  const keyFile = settings.gatewayTlsKey.read(env);
  if (Boolean(certFile) !== Boolean(keyFile)) {
    throw new MeshError(
      Code.InvalidArgument,
      `${settings.gatewayTlsCert.name} and ${settings.gatewayTlsKey.name} are set together or not at all`,
    );
  }
  // JWTs are on with an issuer and an audience; their JWKS is the URL, else the `jwt-jwks`
  // secret (`AGENTMESH_JWT_JWKS_FILE`, the secrets directory or Vault), read by the gateway.
  const jwksUrl = settings.jwtJwksUrl.read(env);
  const jwksFile = settings.jwtJwksFile.read(env);
  if (jwksUrl && jwksFile) {
    throw new MeshError(
      Code.InvalidArgument,
      `set one of ${settings.jwtJwksUrl.name} and ${settings.jwtJwksFile.name}, not both`,
    );
  }
  const issuer = settings.jwtIssuer.read(env);
  const audience = settings.jwtAudience.read(env);
  const jwtOn = Boolean(jwksUrl || jwksFile || issuer || audience);
  if (jwtOn && (!issuer || !audience)) {
    throw new MeshError(
      Code.InvalidArgument,
      `JWT auth needs ${settings.jwtIssuer.name} and ${settings.jwtAudience.name}: a token issued for another application must not pass`,
    );
  }
  const rate = settings.gatewayRatePerSecond.read(env);
  const streams = settings.gatewayMaxStreams.read(env);
  const maxRequestBytes = settings.gatewayMaxRequestBytes.read(env);
  const maxDepth = settings.gatewayMaxRequestDepth.read(env);
  const maxListLength = settings.gatewayMaxListLength.read(env);
  const maxValues = settings.gatewayMaxRequestValues.read(env);
  const defaultRequest = {
    ...(maxDepth ? { maxDepth } : {}),
    ...(maxListLength ? { maxListLength } : {}),
    ...(maxValues ? { maxValues } : {}),
  };
  const maxTimeoutMs = settings.gatewayMaxTimeoutMs.read(env);
  const defaultTimeoutMs = settings.gatewayDefaultTimeoutMs.read(env);
  return {
    ...(certFile && keyFile ? { tls: { certFile, keyFile } } : {}),
    allowInsecure: settings.gatewayAllowInsecure.read(env),
    ...(jwtOn
      ? {
          jwt: {
            ...(jwksUrl ? { jwksUrl } : {}),
            issuer: issuer as string,
            audience: audience as string,
            tenantClaim: settings.jwtTenantClaim.read(env),
            rolesClaim: settings.jwtRolesClaim.read(env),
          },
        }
      : {}),
    corsOrigins: settings.corsOrigins.read(env),
    limits: {
      ...(rate ? { defaultRatePerSecond: rate } : {}),
      ...(streams ? { defaultMaxStreams: streams } : {}),
      ...(Object.keys(defaultRequest).length > 0 ? { defaultRequest } : {}),
    },
    ...(maxRequestBytes ? { maxRequestBytes } : {}),
    ...(maxTimeoutMs ? { maxTimeoutMs } : {}),
    ...(defaultTimeoutMs ? { defaultTimeoutMs } : {}),
    dashboard: settings.gatewayDashboard.read(env),
  };
}
