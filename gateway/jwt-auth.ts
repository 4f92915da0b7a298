/**
 * JWT authentication with `jose`: signature against a JWKS (the `jwt-jwks`
 * secret of `lib/secrets`, swapped in whenever it rotates, or a URL, fetched
 * and cached by jose), `iss`, `aud`, `exp` and `nbf`
 * always (a gateway without an issuer and an audience refuses to start: a
 * token the same identity provider issued for another application must not
 * pass), then claims → principal: the tenant claim, `sub`, and
 * the roles claim (an array or a space-separated string, as in OAuth `scope`).
 *
 * @example
 * const jwt = await jwtAuthenticator({ jwksUrl: "https://idp.example/.well-known/jwks.json", issuer: "https://idp.example/", audience: "agentmesh" });
 * const principal = await jwt.verify(token);
 */
import { create } from "@bufbuild/protobuf";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  jwtVerify,
} from "jose";
import { type Principal, PrincipalSchema } from "../gen/agentmesh/v1/common_pb.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { isName, nameRules } from "../lib/proto/name-rules.js";
import type { SecretStore } from "../lib/secrets/secret-store.js";
import { unauthenticated } from "./api-key-auth.js";

export interface JwtOptions {
  /**
   * The JWKS (`{"keys": [...]}`) is the `jwt-jwks` secret of this store
   * (`AGENTMESH_JWT_JWKS_FILE`, `$AGENTMESH_SECRETS_DIR/jwt-jwks` or Vault),
   * and a rotated one takes effect without a restart. One of `jwksSecret`,
   * `jwksUrl`, `jwks` is required.
   */
  jwksSecret?: Pick<SecretStore, "require" | "subscribe">;
  /** A JWKS URL, fetched on demand and cached (jose's defaults: 10 min, cooldown 30 s). */
  jwksUrl?: string;
  /** An in-memory JWKS (tests). */
  jwks?: JSONWebKeySet;
  /** The `iss` every token must carry. Required. */
  issuer: string;
  /** The `aud` every token must name (this gateway). Required. */
  audience: string;
  /** Claim naming the tenant. Default `tenant_id`. */
  tenantClaim?: string;
  /** Claim carrying roles (array or space-separated). Default `roles`. */
  rolesClaim?: string;
  /** Accepted algorithms. Default RS256, ES256, EdDSA (never `none`). */
  algorithms?: string[];
  /** Clock tolerance in seconds. Default 5. */
  clockToleranceS?: number;
}

export interface JwtAuthenticator {
  verify(token: string): Promise<Principal>;
  /** Stops following the JWKS secret. */
  close(): void;
}

export async function jwtAuthenticator(options: JwtOptions): Promise<JwtAuthenticator> {
  const missing = (["issuer", "audience"] as const).filter(
    (k) => typeof options[k] !== "string" || options[k].trim() === "",
  );
  if (missing.length > 0) {
    throw new MeshError(
      Code.FailedPrecondition,
      `JWT auth needs ${missing.join(" and ")}: set the issuer (iss) and the audience (aud) the gateway's tokens carry`,
    );
  }
  let keys: ReturnType<typeof createLocalJWKSet> | ReturnType<typeof createRemoteJWKSet>;
  let close = () => {};
  if (options.jwks) keys = createLocalJWKSet(options.jwks);
  else if (options.jwksSecret) {
    const secret = options.jwksSecret;
    keys = localKeys(await secret.require("jwt-jwks"));
    // A rotated JWKS replaces the keys for the next token; a broken one keeps the last good set.
    close = secret.subscribe("jwt-jwks", (text) => {
      try {
        if (text) keys = localKeys(text);
      } catch {}
    });
  } else if (options.jwksUrl) keys = createRemoteJWKSet(new URL(options.jwksUrl));
  else throw new MeshError(Code.InvalidArgument, "JWT auth needs jwksSecret, jwksUrl or jwks");
  const tenantClaim = options.tenantClaim ?? "tenant_id";
  const rolesClaim = options.rolesClaim ?? "roles";
  const verifyOptions = {
    algorithms: options.algorithms ?? ["RS256", "ES256", "EdDSA"],
    clockTolerance: options.clockToleranceS ?? 5,
    issuer: options.issuer,
    audience: options.audience,
    requiredClaims: ["iss", "aud", "exp"],
  };
  return {
    async verify(token) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, verifyOptions));
      } catch (err) {
        throw jwtError(err);
      }
      const tenantId = payload[tenantClaim];
      if (typeof tenantId !== "string" || !isName(nameRules.tenantId, tenantId)) {
        throw unauthenticated(`token has no valid ${tenantClaim} claim`);
      }
      if (typeof payload.sub !== "string" || payload.sub === "") {
        throw unauthenticated("token has no sub claim");
      }
      const raw = payload[rolesClaim];
      const roles = Array.isArray(raw)
        ? raw.filter((r): r is string => typeof r === "string")
        : typeof raw === "string"
          ? raw.split(" ").filter(Boolean)
          : [];
      return create(PrincipalSchema, { tenantId, subject: `jwt:${payload.sub}`, roles });
    },
    close: () => close(),
  };
}

/** The key set of a JWKS text; FAILED_PRECONDITION when it is not a JWKS. */
function localKeys(text: string): ReturnType<typeof createLocalJWKSet> {
  let jwks: JSONWebKeySet;
  try {
    jwks = JSON.parse(text) as JSONWebKeySet;
    return createLocalJWKSet(jwks);
  } catch (err) {
    throw new MeshError(Code.FailedPrecondition, "secret jwt-jwks is not a JWKS", { cause: err });
  }
}

function jwtError(err: unknown): MeshError {
  if (err instanceof errors.JWTExpired) return unauthenticated("token expired");
  if (err instanceof errors.JWTClaimValidationFailed) {
    return unauthenticated(`token claim ${err.claim} is not acceptable: ${err.reason}`);
  }
  if (err instanceof errors.JWKSTimeout || !(err instanceof errors.JOSEError)) {
    return new MeshError(Code.Unavailable, "cannot verify the token right now", { cause: err });
  }
  if (err instanceof errors.JWKSNoMatchingKey)
    return unauthenticated("token signed by an unknown key");
  return unauthenticated("invalid token");
}
