/**
 * Turns request headers into a principal: `Authorization: Bearer <credential>`
 * or `x-api-key: <key>`. A credential shaped like an API key (`am_<id>_<secret>`)
 * is checked as one; anything else as a JWT when JWT auth is configured.
 * No credentials, or bad ones, are UNAUTHENTICATED.
 *
 * @example
 * const authenticate = createAuthenticator({ apiKeys: apiKeyAuthenticator({ keys: store.tenants }) });
 * const principal = await authenticate(request.header);
 */
import type { Principal } from "../gen/agentmesh/v1/common_pb.js";
import { type ApiKeyAuthenticator, unauthenticated } from "./api-key-auth.js";
import type { JwtAuthenticator } from "./jwt-auth.js";

export interface AuthenticatorOptions {
  apiKeys?: ApiKeyAuthenticator;
  jwt?: JwtAuthenticator;
}

/** Establishes the caller of one request. */
export type Authenticate = (headers: Headers) => Promise<Principal>;

const apiKeyShape = /^am_/;
const maxCredentialLength = 8192;

export function createAuthenticator(options: AuthenticatorOptions): Authenticate {
  const { apiKeys, jwt } = options;
  return async (headers) => {
    const credential = credentialOf(headers);
    if (credential === undefined) {
      throw unauthenticated(
        "missing credentials: send `Authorization: Bearer <API key or JWT>` or `x-api-key`",
      );
    }
    if (credential.length > maxCredentialLength) throw unauthenticated("credential too long");
    if (apiKeyShape.test(credential)) {
      if (!apiKeys) throw unauthenticated("API keys are not accepted here");
      return apiKeys.verify(credential);
    }
    if (!jwt) throw unauthenticated("invalid API key");
    return jwt.verify(credential);
  };
}

function credentialOf(headers: Headers): string | undefined {
  const authorization = headers.get("authorization");
  if (authorization) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
    if (!match) throw unauthenticated("Authorization header must be `Bearer <credential>`");
    return match[1];
  }
  const key = headers.get("x-api-key");
  return key ? key.trim() : undefined;
}
