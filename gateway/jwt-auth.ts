/**
 * JWT authentication with `jose`: signature against a JWKS (a file, read
 * once, or a URL, fetched and cached by jose), `iss`, `aud`, `exp` and `nbf`
 * always (a gateway without an issuer and an audience refuses to start: a
 * token the same identity provider issued for another application must not
 * pass), then claims → principal: the tenant claim, `sub`, and
 * the roles claim (an array or a space-separated string, as in OAuth `scope`).
 *
 * @example
 * const jwt = await jwtAuthenticator({ jwksUrl: "https://idp.example/.well-known/jwks.json", issuer: "https://idp.example/", audience: "agentmesh" });
 * const principal = await jwt.verify(token);
 */
import { readFile } from "node:fs/promises";
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
import { unauthenticated } from "./api-key-auth.js";

export interface JwtOptions {
  /** A JWKS JSON file (`{"keys": [...]}`). One of `jwksFile`, `jwksUrl`, `jwks` is required. */
  jwksFile?: string;
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
  if (options.jwks) keys = createLocalJWKSet(options.jwks);
  else if (options.jwksFile) {
    const text = await readFile(options.jwksFile, "utf8");
    keys = createLocalJWKSet(JSON.parse(text) as JSONWebKeySet);
  } else if (options.jwksUrl) keys = createRemoteJWKSet(new URL(options.jwksUrl));
  else throw new MeshError(Code.InvalidArgument, "JWT auth needs jwksFile, jwksUrl or jwks");
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
  };
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
