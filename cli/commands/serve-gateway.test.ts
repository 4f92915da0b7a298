import { describe, expect, it } from "vitest";
import { gatewayOptionsFromEnv } from "./serve-gateway.js";

describe("gatewayOptionsFromEnv", () => {
  it("ships API keys only, plain loopback HTTP, no CORS origin and the gateway's own limits", () => {
    const options = gatewayOptionsFromEnv({});
    expect(options).toEqual({
      allowInsecure: false,
      corsOrigins: [],
      limits: {},
      dashboard: true,
    });
  });

  it("reads the listener's certificate files, JWT, CORS origins and limits", () => {
    const options = gatewayOptionsFromEnv({
      AGENTMESH_GATEWAY_TLS_CERT: "/tls/tls.crt",
      AGENTMESH_GATEWAY_TLS_KEY: "/tls/tls.key",
      AGENTMESH_JWT_JWKS_URL: "https://idp.example/.well-known/jwks.json",
      AGENTMESH_JWT_ISSUER: "https://idp.example/",
      AGENTMESH_JWT_AUDIENCE: "agentmesh",
      AGENTMESH_CORS_ORIGINS: "https://app.example, https://ops.example",
      AGENTMESH_GATEWAY_RATE_PER_SECOND: "50",
      AGENTMESH_GATEWAY_MAX_STREAMS: "10",
      AGENTMESH_GATEWAY_MAX_REQUEST_BYTES: "65536",
      AGENTMESH_GATEWAY_MAX_REQUEST_DEPTH: "8",
      AGENTMESH_GATEWAY_MAX_LIST_LENGTH: "500",
      AGENTMESH_GATEWAY_MAX_REQUEST_VALUES: "2000",
      AGENTMESH_GATEWAY_DASHBOARD: "false",
    });
    expect(options).toEqual({
      tls: { certFile: "/tls/tls.crt", keyFile: "/tls/tls.key" },
      allowInsecure: false,
      jwt: {
        jwksUrl: "https://idp.example/.well-known/jwks.json",
        issuer: "https://idp.example/",
        audience: "agentmesh",
        tenantClaim: "tenant_id",
        rolesClaim: "roles",
      },
      corsOrigins: ["https://app.example", "https://ops.example"],
      limits: {
        defaultRatePerSecond: 50,
        defaultMaxStreams: 10,
        defaultRequest: { maxDepth: 8, maxListLength: 500, maxValues: 2000 },
      },
      maxRequestBytes: 65536,
      dashboard: false,
    });
  });

  it("takes the JWKS from the jwt-jwks secret when no URL is set", () => {
    const jwt = {
      issuer: "https://idp.example/",
      audience: "agentmesh",
      tenantClaim: "tenant_id",
      rolesClaim: "roles",
    };
    const env = { AGENTMESH_JWT_ISSUER: jwt.issuer, AGENTMESH_JWT_AUDIENCE: jwt.audience };
    expect(gatewayOptionsFromEnv(env).jwt).toEqual(jwt);
    // The file is where the file secrets provider finds the secret, not read here.
    expect(gatewayOptionsFromEnv({ ...env, AGENTMESH_JWT_JWKS_FILE: "/j" }).jwt).toEqual(jwt);
  });

  it("refuses half a configuration with the variables' names", () => {
    expect(() => gatewayOptionsFromEnv({ AGENTMESH_GATEWAY_TLS_CERT: "/tls/tls.crt" })).toThrow(
      /AGENTMESH_GATEWAY_TLS_CERT and AGENTMESH_GATEWAY_TLS_KEY/,
    );
    expect(() =>
      gatewayOptionsFromEnv({
        AGENTMESH_JWT_JWKS_URL: "https://idp.example/.well-known/jwks.json",
        AGENTMESH_JWT_ISSUER: "https://idp.example/",
      }),
    ).toThrow(/JWT auth needs AGENTMESH_JWT_ISSUER and AGENTMESH_JWT_AUDIENCE/);
    expect(() => gatewayOptionsFromEnv({ AGENTMESH_JWT_ISSUER: "https://idp.example/" })).toThrow(
      /JWT auth needs AGENTMESH_JWT_ISSUER and AGENTMESH_JWT_AUDIENCE/,
    );
    expect(() => gatewayOptionsFromEnv({ AGENTMESH_JWT_JWKS_FILE: "/j" })).toThrow(
      /JWT auth needs AGENTMESH_JWT_ISSUER and AGENTMESH_JWT_AUDIENCE/,
    );
    expect(() =>
      gatewayOptionsFromEnv({
        AGENTMESH_JWT_JWKS_URL: "https://x/",
        AGENTMESH_JWT_JWKS_FILE: "/j",
      }),
    ).toThrow(/not both/);
    expect(() => gatewayOptionsFromEnv({ AGENTMESH_GATEWAY_RATE_PER_SECOND: "fast" })).toThrow(
      /AGENTMESH_GATEWAY_RATE_PER_SECOND="fast": expected a positive integer/,
    );
  });
});
