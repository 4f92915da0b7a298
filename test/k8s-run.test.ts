/**
 * The production overlay, run as the kubelet would run it, without a cluster:
 * `kustomize build`, then every Job's and Deployment's container started with
 * the image's entrypoint in the image's layout (test/k8s/image.ts, from the
 * Dockerfile), exactly its environment (ConfigMap, env, Secret values,
 * `$(VAR)` expansion), as uid/gid 10001 with its volumes as the only writable
 * places (the package is read-only and owned by root), Secret and ConfigMap
 * files at the modes the pod spec gives them (owner root, group fsGroup), and
 * every Service name mapped to a loopback port. Against real PostgreSQL (the
 * owner runs the migrations Job, the components connect as the runtime role
 * without DDL rights) and a real NATS with mutual TLS configured as
 * `agentmesh nats config` writes it. Every readiness probe passes, a goal
 * submitted through the gateway succeeds, and a killed process fails its
 * probes until restarted, then passes them again.
 *
 * What a container would give that this cannot: one network namespace per pod
 * (so each process gets its own metrics and service port here), PostgreSQL's
 * TLS (the local server's certificate is not the cluster's, so sslmode and
 * sslrootcert are dropped from DATABASE_URL), and a private /tmp (TMPDIR points
 * at the pod's /tmp volume).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { builtinAgents } from "../agents/builtin.js";
import { renderNatsConfig } from "../lib/bus/nats-config.js";
import { busGrantsFromPolicyData } from "../lib/bus/nats-permissions.js";
import { freePort } from "../lib/testing/free-port.js";
import { needPostgres } from "../lib/testing/infra.js";
import {
  natsServerBinary,
  type PrivateNatsServer,
  startNatsServer,
} from "../lib/testing/nats-server.js";
import { certPaths, ensureIdentities } from "../lib/tls/dev-ca.js";
import { buildDist, layOut, runtimeStage } from "./k8s/image.js";

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are read structurally.
type K8sObject = any;

const root = join(import.meta.dirname, "..");
const pg = await needPostgres();
const toolEnv = { ...process.env, PATH: `${process.env.HOME}/go/bin:${process.env.PATH}` };
const haveTools =
  spawnSync("kustomize", ["version"], { stdio: "ignore", env: toolEnv }).status === 0 &&
  existsSync(natsServerBinary());
const asRoot = process.getuid?.() === 0;
if (!haveTools || !asRoot) {
  const why = !haveTools
    ? "kustomize or nats-server missing (.ci/k8s-tools.sh, .ci/tools.sh)"
    : "not root (cannot run as uid 10001)";
  if (process.env.CI === "true" && !haveTools) throw new Error(why);
  console.warn(`SKIP manifest-driven run: ${why}`);
}

const uid = 10001;

interface Pod {
  name: string;
  spec: K8sObject;
  root: string;
  env: Record<string, string>;
  metricsPort: number;
  child?: ChildProcess;
  output: string;
}

describe.skipIf(!pg || !haveTools || !asRoot)(
  "the production manifests, run process by process",
  () => {
    const stage = runtimeStage(join(root, "Dockerfile"));
    let work: string;
    let app: string;
    let nats: PrivateNatsServer;
    let objects: K8sObject[];
    const pods = new Map<string, Pod>();
    /** Service DNS name:port → loopback address. */
    const dns = new Map<string, string>();
    const secrets = new Map<string, Record<string, string>>();
    const configMaps = new Map<string, Record<string, string>>();
    let issued: string;

    const psql = (sql: string) =>
      execFileSync(
        "psql",
        [pg!.url.replace(/\/[^/]*$/, "/postgres"), "-v", "ON_ERROR_STOP=1", "-qc", sql],
        {
          stdio: "pipe",
        },
      );

    beforeAll(async () => {
      const rendered = execFileSync(
        "kustomize",
        ["build", join(root, "k8s", "overlays", "production")],
        {
          encoding: "utf8",
          env: toolEnv,
        },
      );
      objects = parseAllDocuments(rendered).map((d) => d.toJS());
      work = mkdtempSync(join(tmpdir(), "agentmesh-k8s-run-"));
      chmodSync(work, 0o755);

      // The image: its layout from the checkout's build, owned by root and read-only.
      await buildDist(root);
      app = layOut(stage, root, join(work, "app"));
      execFileSync("chmod", [
        "-R",
        "a-w,a+rX",
        ...["dist", "bin", "bundles", "policies", "services", "gateway", "package.json"].map((p) =>
          join(app, p),
        ),
      ]);

      // cert-manager and trust-manager: one certificate per identity from one CA.
      issued = join(work, "issued");
      const identities = objects
        .filter((o) => o.kind === "Certificate" && o.spec.uris)
        .map((o) => o.spec.uris[0].split("/").pop());
      await ensureIdentities({ certDir: issued, names: identities });
      for (const name of identities) {
        const p = certPaths(issued, name);
        secrets.set(`${name}-mtls`, {
          "tls.crt": readFileSync(p.cert, "utf8"),
          "tls.key": readFileSync(p.key, "utf8"),
        });
      }
      configMaps.set("agentmesh-ca", {
        "ca.crt": readFileSync(certPaths(issued, "ca").cert, "utf8"),
      });
      configMaps.set("agentmesh-policy", {
        "agentmesh.tar.gz": readFileSync(join(root, "bundles", "agentmesh.tar.gz"), "latin1"),
      });
      for (const cm of objects.filter((o) => o.kind === "ConfigMap"))
        configMaps.set(cm.metadata.name, cm.data);

      // CloudNativePG: the database owned by the owner role, and the runtime role.
      for (const role of ["agentmesh_owner", "agentmesh_runtime"]) {
        psql(
          `do $$ begin if not exists (select from pg_roles where rolname = '${role}') then create role ${role} login; end if; end $$`,
        );
        secrets.set(`agentmesh-db-${role.split("_")[1]}`, {
          username: role,
          password: "test-password",
        });
      }
      psql("drop database if exists agentmesh with (force)");
      psql("create database agentmesh owner agentmesh_owner");
      secrets.set("agentmesh-db-ca", {
        "ca.crt": "unused: the local PostgreSQL's TLS is not the cluster's\n",
      });
      dns.set("agentmesh-db-rw.agentmesh.svc:5432", "127.0.0.1:5432");

      // NATS with mutual TLS, configured as `agentmesh nats config` writes it.
      const server = certPaths(issued, "nats");
      const capabilities = ["text", "data", "util"].flatMap((a) =>
        Object.keys(builtinAgents[a]!().skills),
      );
      nats = await startNatsServer({
        scheme: "tls",
        config: renderNatsConfig({
          grants: busGrantsFromPolicyData(
            JSON.parse(readFileSync(join(root, "policies", "data.json"), "utf8")),
          ),
          trustDomain: "agentmesh.local",
          namespace: "agentmesh",
          tls: { cert: server.cert, key: server.key, ca: server.ca },
          knownCapabilities: capabilities,
        }),
      });
      dns.set("nats.agentmesh.svc.cluster.local:4222", `127.0.0.1:${nats.port}`);
      for (const svc of objects.filter((o) => o.kind === "Service" && o.metadata.name !== "nats")) {
        const port = svc.spec.ports[0].port;
        dns.set(
          `${svc.metadata.name}.agentmesh.svc.cluster.local:${port}`,
          `127.0.0.1:${await freePort()}`,
        );
      }
    }, 600_000);

    afterAll(async () => {
      for (const pod of pods.values()) pod.child?.kill("SIGKILL");
      await nats?.stop();
      if (pg) psql("drop database if exists agentmesh with (force)");
      if (work) {
        execFileSync("chmod", ["-R", "u+w", work]);
        rmSync(work, { recursive: true, force: true });
      }
    });

    /** Lays out a pod's volumes under its own root and works out its container's environment. */
    async function preparePod(workload: K8sObject): Promise<Pod> {
      const name = workload.metadata.name;
      const spec = workload.spec.template.spec;
      const container = spec.containers[0];
      const podRoot = join(work, "pods", name);
      expect(spec.securityContext.runAsUser).toBe(uid);
      const fsGroup = spec.securityContext.fsGroup;
      const volumes = new Map<string, K8sObject>(spec.volumes.map((v: K8sObject) => [v.name, v]));
      for (const mount of container.volumeMounts) {
        const volume = volumes.get(mount.name);
        const dir = join(podRoot, mount.mountPath);
        mkdirSync(dir, { recursive: true });
        const files = (items: [string, string][], mode: number) => {
          for (const [path, content] of items) {
            const file = join(dir, path);
            execFileSync("sh", ["-c", 'cat > "$1"', "sh", file], {
              input: Buffer.from(content, "latin1"),
            });
            chownSync(file, 0, fsGroup);
            chmodSync(file, mode);
          }
          chownSync(dir, 0, fsGroup);
          chmodSync(dir, 0o750);
        };
        if (volume.emptyDir) {
          chownSync(dir, 0, fsGroup);
          chmodSync(dir, 0o2770);
        } else if (volume.secret) {
          const data = secrets.get(volume.secret.secretName)!;
          const items =
            volume.secret.items ?? Object.keys(data).map((k: string) => ({ key: k, path: k }));
          files(
            items.map((i: K8sObject) => [i.path, data[i.key]!]),
            volume.secret.defaultMode ?? 0o644,
          );
        } else if (volume.configMap) {
          const data = configMaps.get(volume.configMap.name)!;
          files(Object.entries(data), volume.configMap.defaultMode ?? 0o644);
        } else if (volume.projected) {
          const items: [string, string][] = [];
          for (const source of volume.projected.sources) {
            const s = source.secret ?? source.configMap;
            const data = (source.secret ? secrets : configMaps).get(s.name)!;
            for (const i of s.items) items.push([i.path, data[i.key]!]);
          }
          files(items, volume.projected.defaultMode ?? 0o644);
        } else {
          throw new Error(`volume ${mount.name} of ${name}: kind not emulated`);
        }
      }
      // The environment: the image's ENV, the ConfigMaps, then env with Secrets and $(VAR).
      const env: Record<string, string> = { ...stage.env };
      for (const from of container.envFrom ?? [])
        Object.assign(env, configMaps.get(from.configMapRef.name));
      for (const e of container.env ?? []) {
        if (e.valueFrom?.secretKeyRef)
          env[e.name] = secrets.get(e.valueFrom.secretKeyRef.name)![e.valueFrom.secretKeyRef.key]!;
        else env[e.name] = String(e.value).replace(/\$\((\w+)\)/g, (_m, v) => env[v] ?? `$(${v})`);
      }
      // What the cluster would resolve or isolate: Service names, the pod's own ports and paths.
      for (const [k, v] of Object.entries(env)) {
        let value = v;
        for (const [from, to] of dns) value = value.replaceAll(from, to);
        value = value.replace(
          /(^|[=])(\/(?:var|etc|tmp)\/[^\s&?]*)/g,
          (_m, pre, path) => pre + join(podRoot, path),
        );
        env[k] = value;
      }
      if (env.DATABASE_URL) env.DATABASE_URL = env.DATABASE_URL.replace(/\?.*$/, "");
      const metricsPort = await freePort();
      env.AGENTMESH_METRICS_PORT = String(metricsPort);
      const args: string[] = container.args;
      if (args[0] === "serve") {
        const svc = objects.find((o) => o.kind === "Service" && o.metadata.name === args[1]);
        const own = dns.get(`${args[1]}.agentmesh.svc.cluster.local:${svc.spec.ports[0].port}`)!;
        env[`AGENTMESH_${args[1]!.toUpperCase()}_PORT`] = own.split(":")[1]!;
      }
      env.TMPDIR = join(podRoot, "tmp");
      env.HOME = "/";
      env.PATH = process.env.PATH ?? "/usr/bin:/bin";
      const pod: Pod = { name, spec, root: podRoot, env, metricsPort, output: "" };
      pods.set(name, pod);
      return pod;
    }

    function start(pod: Pod, args: string[] = pod.spec.containers[0].args): ChildProcess {
      const [, ...entry] = stage.entrypoint;
      const child = spawn(process.execPath, [...entry, ...args], {
        cwd: app,
        env: pod.env,
        uid,
        gid: uid,
        stdio: ["ignore", "pipe", "pipe"],
      });
      child.stdout?.on("data", (b) => (pod.output += b));
      child.stderr?.on("data", (b) => (pod.output += b));
      return child;
    }

    async function probe(pod: Pod, path: string): Promise<number> {
      try {
        const res = await fetch(`http://127.0.0.1:${pod.metricsPort}${path}`, {
          signal: AbortSignal.timeout(2000),
        });
        return res.status;
      } catch {
        return 0;
      }
    }

    async function until(what: string, check: () => Promise<boolean>, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }

    it("runs the migrations Job as the owner, granting the runtime role", async () => {
      const job = objects.find((o) => o.kind === "Job");
      const pod = await preparePod(job);
      const child = start(pod);
      const code = await new Promise((r) => child.on("exit", r));
      expect(code, pod.output).toBe(0);
      expect(JSON.parse(pod.output.trim().split("\n").pop()!)).toMatchObject({
        granted: "agentmesh_runtime",
      });
    }, 120_000);

    it("starts every Deployment and every readiness probe passes", async () => {
      const deployments = objects.filter((o) => o.kind === "Deployment");
      for (const d of deployments) {
        const pod = await preparePod(d);
        pod.child = start(pod);
      }
      for (const pod of [...pods.values()].filter((p) => p.child)) {
        await until(
          `${pod.name} ready:\n${pod.output}`,
          async () => (await probe(pod, "/readyz")) === 200,
        );
        expect(await probe(pod, "/healthz")).toBe(200);
      }
    }, 300_000);

    it("a goal submitted through the gateway succeeds", async () => {
      const gateway = pods.get("gateway")!;
      // `kubectl exec deploy/gateway -- node bin/agentmesh.js db bootstrap-admin`
      const admin = start(gateway, ["db", "bootstrap-admin"]);
      expect(await new Promise((r) => admin.on("exit", r)), gateway.output).toBe(0);
      const home = gateway.env.AGENTMESH_HOME!;
      const url = `http://${dns.get("gateway.agentmesh.svc.cluster.local:8080")}`;
      const r = spawnSync(
        process.execPath,
        [
          "bin/agentmesh.js",
          "goal",
          "submit",
          "--kind",
          "analyze-text",
          "--input",
          JSON.stringify({ text: "Agents run steps. The executor merges." }),
          "--watch",
        ],
        {
          cwd: app,
          encoding: "utf8",
          timeout: 120_000,
          env: {
            PATH: process.env.PATH,
            AGENTMESH_URL: url,
            AGENTMESH_API_KEY: readFileSync(join(home, "admin.key"), "utf8").trim(),
          },
        },
      );
      expect(r.stdout + r.stderr).toMatch(/goal \S+ succeeded/);
    }, 180_000);

    it("a killed process fails its probes and passes them again once restarted", async () => {
      for (const name of ["executor", "agent-util"]) {
        const pod = pods.get(name)!;
        const exited = new Promise((r) => pod.child!.on("exit", r));
        pod.child!.kill("SIGKILL");
        await exited;
        expect(await probe(pod, "/healthz")).toBe(0);
        expect(await probe(pod, "/readyz")).toBe(0);
        pod.child = start(pod);
        await until(
          `${name} ready again:\n${pod.output}`,
          async () => (await probe(pod, "/readyz")) === 200,
        );
      }
    }, 300_000);

    it("stops at start with a clear error where the pod declares nothing writable", async () => {
      const registry = pods.get("registry")!;
      // The decision log moved into the image's (read-only, root-owned) directory.
      const pod: Pod = {
        ...registry,
        env: { ...registry.env, AGENTMESH_LOG_DIR: join(app, "logs") },
        output: "",
      };
      pod.env.AGENTMESH_REGISTRY_PORT = String(await freePort());
      pod.env.AGENTMESH_METRICS_PORT = String(await freePort());
      const child = start(pod);
      const code = await new Promise((r) => child.on("exit", r));
      expect(code).not.toBe(0);
      expect(pod.output).toContain(
        `the decision log directory ${join(app, "logs")} is not writable (EACCES)`,
      );
      expect(pod.output).not.toMatch(/sonic boom/i);
    }, 120_000);
  },
);
