/**
 * The `file` secrets provider (the default): each secret is a file, re-read
 * when it changes. A secret's file is, in order: the path its own setting
 * names (`AGENTMESH_AUDIT_CHECKPOINT_KEY`, `AGENTMESH_JWT_JWKS_FILE`), the
 * file named for it in the secrets directory (`AGENTMESH_SECRETS_DIR`, a
 * Kubernetes Secret mounted as a volume), or where earlier versions kept it
 * (`$AGENTMESH_HOME/admin.key`, `$AGENTMESH_HOME/audit-checkpoint.key`).
 * Three secrets may also come from a variable, as Kubernetes `secretKeyRef`s
 * deliver them (or a shell, for the CLI): `DATABASE_URL`,
 * `AGENTMESH_LLM_PLANNER_API_KEY` and `AGENTMESH_API_KEY`.
 *
 * @example
 * const secrets = openFileSecrets({ home: ".agentmesh" });
 * await secrets.create("admin-api-key", key); // 0600, never half-written
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { link, mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { settings } from "../config/settings.js";
import { watchDirectories } from "../watch/file-reload.js";
import { fileKeyWrapper } from "./file-key-wrapper.js";
import { missingSecret, type SecretName, type SecretStore, secretNames } from "./secret-store.js";

type Env = Readonly<Record<string, string | undefined>>;

export interface FileSecretsOptions {
  /** State directory (`AGENTMESH_HOME`). */
  home: string;
  /** Default `AGENTMESH_SECRETS_DIR`, else `<home>/secrets`. */
  dir?: string;
  env?: Env;
  /** How often files are re-read besides watch events. Default 5000 ms; 0 off. */
  pollMs?: number;
}

/** Secrets that a variable may carry, and the variable. */
const fromVariable: Partial<Record<SecretName, (env: Env) => string | undefined>> = {
  "database-url": (env) => settings.databaseUrl.read(env),
  "llm-planner-api-key": (env) => settings.llmPlannerApiKey.read(env),
  "cli-api-key": (env) => settings.apiKey.read(env),
};

export function openFileSecrets(options: FileSecretsOptions): SecretStore {
  const env = options.env ?? process.env;
  const home = resolve(options.home);
  const dir = resolve(options.dir ?? settings.secretsDir.read(env) ?? join(home, "secrets"));
  const own: Partial<Record<SecretName, string | undefined>> = {
    "audit-checkpoint-key": settings.auditCheckpointKey.read(env),
    "jwt-jwks": settings.jwtJwksFile.read(env),
  };
  const legacy: Partial<Record<SecretName, string>> = {
    "admin-api-key": join(home, "admin.key"),
    "audit-checkpoint-key": join(home, "audit-checkpoint.key"),
  };
  const pathOf = (name: SecretName): string => {
    const set = own[name];
    if (set) return resolve(set);
    const inDir = join(dir, name);
    const old = legacy[name];
    return old && !existsSync(inDir) ? old : inDir;
  };

  const cache = new Map<SecretName, string | undefined>();
  const listeners = new Map<SecretName, Set<(value: string | undefined) => void>>();
  const read = async (name: SecretName): Promise<string | undefined> => {
    const variable = fromVariable[name]?.(env);
    if (variable) return variable;
    const text = await readFile(pathOf(name), "utf8").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
    // A file written by `echo` ends in a newline that is no part of the secret.
    return text === undefined ? undefined : text.replace(/\r?\n$/, "");
  };
  const get = async (name: SecretName) => {
    // A missing secret is looked for again next time: it may have been put there since.
    if (cache.get(name) !== undefined) return cache.get(name);
    const value = await read(name);
    cache.set(name, value);
    return value;
  };
  // A change anywhere re-reads what is cached or watched and tells subscribers what moved.
  let rereading: Promise<void> | undefined;
  const reread = () => {
    rereading ??= (async () => {
      for (const name of new Set([...cache.keys(), ...listeners.keys()])) {
        const before = cache.get(name);
        const after = await read(name).catch(() => before);
        cache.set(name, after);
        if (after !== before) for (const fn of listeners.get(name) ?? []) fn(after);
      }
    })().finally(() => {
      rereading = undefined;
    });
    return rereading;
  };
  const watchedDirs = () =>
    [...new Set(secretNames.map((n) => dirname(pathOf(n))))].filter((d) => existsSync(d));
  let watch = watchDirectories(watchedDirs(), () => void reread(), {
    debounceMs: 25,
    pollMs: options.pollMs ?? 5000,
  });
  const rewatch = () => {
    watch.close();
    watch = watchDirectories(watchedDirs(), () => void reread(), {
      debounceMs: 25,
      pollMs: options.pollMs ?? 5000,
    });
  };

  const store: SecretStore = {
    provider: "file",
    get,
    async require(name) {
      const value = await get(name);
      if (value === undefined || value === "") throw missingSecret(name, store.location(name));
      return value;
    },
    async create(name, value) {
      const existing = await read(name);
      if (existing) return existing;
      const path = pathOf(name);
      const madeDir = !existsSync(dirname(path));
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      // Written whole to a private file, then linked into place: link never
      // overwrites, so of two processes creating at once one value wins, complete.
      const tmp = await writePrivateTemp(path, value);
      try {
        await link(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      } finally {
        await unlink(tmp);
      }
      if (madeDir) rewatch();
      const stored = (await read(name)) as string;
      cache.set(name, stored);
      return stored;
    },
    async put(name, value) {
      const path = pathOf(name);
      const madeDir = !existsSync(dirname(path));
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      // Write then rename so a reader never sees half a secret; 0600 before any byte lands.
      const tmp = await writePrivateTemp(path, value);
      await rename(tmp, path);
      if (madeDir) rewatch();
      cache.set(name, value);
    },
    location(name) {
      const variable = fromVariable[name];
      if (variable?.(env)) return `the environment (${variableName(name)})`;
      return pathOf(name);
    },
    subscribe(name, onChange) {
      let set = listeners.get(name);
      if (!set) {
        set = new Set();
        listeners.set(name, set);
        if (!cache.has(name)) void get(name).catch(() => undefined);
      }
      set.add(onChange);
      return () => set.delete(onChange);
    },
    keys: undefined as never,
    status: () => ({ ready: true }),
    async close() {
      watch.close();
      await rereading;
    },
  };
  (store as { keys: SecretStore["keys"] }).keys = fileKeyWrapper(store);
  return store;
}

function variableName(name: SecretName): string {
  if (name === "database-url") return settings.databaseUrl.name;
  return name === "cli-api-key" ? settings.apiKey.name : settings.llmPlannerApiKey.name;
}

/** Writes `value` to a new 0600 file beside `path` (synced; 0600 before any byte lands) and returns its name. */
async function writePrivateTemp(path: string, value: string): Promise<string> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const file = await open(tmp, "wx", 0o600);
  try {
    await file.writeFile(`${value}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  return tmp;
}
