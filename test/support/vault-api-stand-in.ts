/**
 * A stand-in for the few Vault HTTP API endpoints agentmesh's Vault provider
 * calls, for CI where no Vault server can be installed. It is NOT Vault: it
 * keeps everything in memory and answers exactly these endpoints, with the
 * request and response shapes of Vault's API documentation
 * (developer.hashicorp.com/vault/api-docs):
 *
 * | endpoint | docs |
 * | --- | --- |
 * | `GET /v1/:kv/data/:path` | secret/kv/kv-v2 "Read secret version": `{data: {data, metadata: {version, created_time, deletion_time, destroyed, custom_metadata}}}`, 404 `{errors: []}` when absent |
 * | `GET /v1/:kv/metadata/:path` | secret/kv/kv-v2 "Read secret metadata": `{data: {current_version, oldest_version, versions: {N: {...}}, ...}}` |
 * | `POST /v1/:transit/encrypt/:key` | secret/transit "Encrypt data": `{plaintext: base64}` → `{data: {ciphertext: "vault:vN:...", key_version}}` |
 * | `POST /v1/:transit/decrypt/:key` | secret/transit "Decrypt data": `{ciphertext}` → `{data: {plaintext: base64}}` |
 * | `POST /v1/:transit/rewrap/:key` | secret/transit "Rewrap data": `{ciphertext}` → `{data: {ciphertext, key_version}}` under the newest version |
 * | `POST /v1/auth/kubernetes/login` | auth/kubernetes "Login": `{role, jwt}` → `{auth: {client_token, accessor, policies, lease_duration, renewable}}` |
 * | `POST /v1/auth/approle/login` | auth/approle "Login with AppRole": `{role_id, secret_id}` → `{auth: {...}}` |
 * | `POST /v1/auth/token/renew-self` | auth/token "Renew a token (self)": `{increment?}` → `{auth: {client_token, lease_duration, renewable}}` |
 * | `GET /v1/auth/token/lookup-self` | auth/token "Lookup a token (self)": `{data: {id, ttl, renewable, policies, expire_time}}` |
 *
 * Every other path answers 404; a missing or unknown `X-Vault-Token` 403
 * `{errors: ["permission denied"]}`, as Vault does. What a test needs to set
 * up (secrets, tokens, roles, a key rotation) is done through methods, not
 * endpoints, so the stand-in serves nothing the provider does not call.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

interface KvVersion {
  data: Record<string, string>;
  created: string;
}

interface Token {
  ttlSeconds: number;
  expires: number;
  renewable: boolean;
  policies: string[];
}

export interface VaultApiStandIn {
  /** `http://127.0.0.1:<port>` */
  readonly addr: string;
  /** A root-like token that never expires. */
  readonly rootToken: string;
  /** Writes a new version of a KV v2 secret (what `vault kv put` does). */
  putSecret(mount: string, path: string, data: Record<string, string>): void;
  /** A token with this TTL (what `vault token create -ttl` does). */
  createToken(ttlSeconds: number, renewable?: boolean): string;
  /** Creates a Transit key version (what `vault write -f transit/keys/:key/rotate` does). */
  rotateTransitKey(key: string): void;
  /** A Kubernetes auth role accepting this service account JWT. */
  addKubernetesRole(role: string, jwt: string, ttlSeconds: number): void;
  /** An AppRole with this role id and secret id. */
  addAppRole(roleId: string, secretId: string, ttlSeconds: number): void;
  /** Requests served, as `METHOD /path`. */
  readonly requests: string[];
  close(): Promise<void>;
}

export async function startVaultApiStandIn(): Promise<VaultApiStandIn> {
  const kv = new Map<string, KvVersion[]>();
  const tokens = new Map<string, Token>();
  const transit = new Map<string, Buffer[]>();
  const k8sRoles = new Map<string, { jwt: string; ttl: number }>();
  const appRoles = new Map<string, { secretId: string; ttl: number }>();
  const requests: string[] = [];
  const rootToken = `hvs.${randomBytes(16).toString("hex")}`;
  tokens.set(rootToken, { ttlSeconds: 0, expires: Infinity, renewable: false, policies: ["root"] });

  const issue = (ttlSeconds: number, renewable = true, policies = ["agentmesh"]) => {
    const token = `hvs.${randomBytes(16).toString("hex")}`;
    tokens.set(token, { ttlSeconds, expires: Date.now() + ttlSeconds * 1000, renewable, policies });
    return token;
  };
  const authBlock = (token: string) => {
    const t = tokens.get(token) as Token;
    return {
      client_token: token,
      accessor: randomUUID(),
      policies: t.policies,
      token_policies: t.policies,
      metadata: {},
      lease_duration: t.ttlSeconds,
      renewable: t.renewable,
    };
  };
  const transitKey = (name: string) => {
    let versions = transit.get(name);
    if (!versions) {
      versions = [randomBytes(32)];
      transit.set(name, versions);
    }
    return versions;
  };
  const seal = (name: string, plaintext: Buffer) => {
    const versions = transitKey(name);
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", versions[versions.length - 1] as Buffer, iv);
    const body = Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return {
      ciphertext: `vault:v${versions.length}:${body.toString("base64")}`,
      key_version: versions.length,
    };
  };
  const open = (name: string, ciphertext: string): Buffer | undefined => {
    const m = /^vault:v(\d+):(.+)$/.exec(ciphertext);
    const key = m ? transitKey(name)[Number(m[1]) - 1] : undefined;
    if (!m || !key) return undefined;
    const body = Buffer.from(m[2] as string, "base64");
    try {
      const d = createDecipheriv("aes-256-gcm", key, body.subarray(0, 12));
      d.setAuthTag(body.subarray(body.length - 16));
      return Buffer.concat([d.update(body.subarray(12, body.length - 16)), d.final()]);
    } catch {
      return undefined;
    }
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const readJson = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    return text ? (JSON.parse(text) as Record<string, unknown>) : {};
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://stand-in");
    const path = url.pathname;
    requests.push(`${req.method} ${path}`);
    const body = req.method === "POST" || req.method === "PUT" ? await readJson(req) : {};

    // Logins need no token.
    let m = /^\/v1\/auth\/([\w-]+)\/login$/.exec(path);
    if (m && req.method === "POST") {
      if (m[1] === "kubernetes") {
        const role = k8sRoles.get(String(body.role));
        if (!role || role.jwt !== body.jwt)
          return send(res, 403, { errors: ["permission denied"] });
        return send(res, 200, { auth: authBlock(issue(role.ttl)) });
      }
      if (m[1] === "approle") {
        const role = appRoles.get(String(body.role_id));
        if (!role || role.secretId !== body.secret_id) {
          return send(res, 400, { errors: ["invalid role or secret ID"] });
        }
        return send(res, 200, { auth: authBlock(issue(role.ttl)) });
      }
      return send(res, 404, { errors: [] });
    }

    const token = String(req.headers["x-vault-token"] ?? "");
    const t = tokens.get(token);
    if (!t || t.expires < Date.now()) return send(res, 403, { errors: ["permission denied"] });

    if (path === "/v1/auth/token/lookup-self" && req.method === "GET") {
      const ttl = t.ttlSeconds === 0 ? 0 : Math.max(0, Math.round((t.expires - Date.now()) / 1000));
      return send(res, 200, {
        data: {
          id: token,
          ttl,
          renewable: t.renewable,
          policies: t.policies,
          expire_time: t.ttlSeconds === 0 ? null : new Date(t.expires).toISOString(),
        },
      });
    }
    if (path === "/v1/auth/token/renew-self" && req.method === "POST") {
      if (!t.renewable) return send(res, 400, { errors: ["lease is not renewable"] });
      t.expires = Date.now() + t.ttlSeconds * 1000;
      return send(res, 200, { auth: authBlock(token) });
    }
    m = /^\/v1\/([\w-]+)\/(data|metadata)\/(.+)$/.exec(path);
    if (m && req.method === "GET") {
      const versions = kv.get(`${m[1]}/${m[3]}`);
      if (!versions) return send(res, 404, { errors: [] });
      const meta = (n: number) => ({
        created_time: versions[n - 1]?.created,
        custom_metadata: null,
        deletion_time: "",
        destroyed: false,
        version: n,
      });
      if (m[2] === "data") {
        const n = Number(url.searchParams.get("version") || versions.length);
        const v = versions[n - 1];
        if (!v) return send(res, 404, { errors: [] });
        return send(res, 200, { data: { data: v.data, metadata: meta(n) } });
      }
      return send(res, 200, {
        data: {
          cas_required: false,
          created_time: versions[0]?.created,
          current_version: versions.length,
          max_versions: 0,
          oldest_version: 0,
          updated_time: versions[versions.length - 1]?.created,
          versions: Object.fromEntries(versions.map((_, i) => [String(i + 1), meta(i + 1)])),
        },
      });
    }
    m = /^\/v1\/([\w-]+)\/(encrypt|decrypt|rewrap)\/([\w-]+)$/.exec(path);
    if (m && req.method === "POST") {
      const key = m[3] as string;
      if (m[2] === "encrypt") {
        return send(res, 200, { data: seal(key, Buffer.from(String(body.plaintext), "base64")) });
      }
      const plain = open(key, String(body.ciphertext));
      if (!plain) return send(res, 400, { errors: ["invalid ciphertext: unable to decrypt"] });
      if (m[2] === "decrypt")
        return send(res, 200, { data: { plaintext: plain.toString("base64") } });
      return send(res, 200, { data: seal(key, plain) });
    }
    return send(res, 404, { errors: [] });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => send(res, 500, { errors: [String(err)] }));
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  return {
    addr: `http://127.0.0.1:${port}`,
    rootToken,
    requests,
    putSecret(mount, path, data) {
      const versions = kv.get(`${mount}/${path}`) ?? [];
      versions.push({ data, created: new Date().toISOString() });
      kv.set(`${mount}/${path}`, versions);
    },
    createToken: (ttl, renewable = true) => issue(ttl, renewable),
    rotateTransitKey(key) {
      transitKey(key).push(randomBytes(32));
    },
    addKubernetesRole(role, jwt, ttl) {
      k8sRoles.set(role, { jwt, ttl });
    },
    addAppRole(roleId, secretId, ttl) {
      appRoles.set(roleId, { secretId, ttl });
    },
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
