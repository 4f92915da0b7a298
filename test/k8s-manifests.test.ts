/**
 * What the rendered production manifests promise, checked as the processes
 * will meet it: identities and their files, the environment the code reads
 * (every AGENTMESH_<NAME>_ADDR, the metrics port the probes use), who gets the
 * database, where a read-only container may write, autoscaling on exactly the
 * consumers the agents create, a PDB per Deployment, and network policy that
 * opens only NATS, PostgreSQL, DNS, Prometheus, the mesh's gRPC and the edge.
 * Schema validity is test/k8s-validate.test.ts.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { builtinAgents } from "../agents/builtin.js";
import { jobConsumerName } from "../lib/bus/bus-names.js";
import { allSettings } from "../lib/config/settings.js";

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are checked structurally below.
type K8sObject = any;

const root = join(import.meta.dirname, "..");

/** The production overlay as kustomize renders it: the base's files plus the overlay's edge and patches. */
function load(): K8sObject[] {
  const files = [
    ...readdirSync(join(root, "k8s", "base"))
      .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
      .map((f) => join(root, "k8s", "base", f)),
    join(root, "k8s", "overlays", "production", "edge.yaml"),
  ];
  return files.flatMap((f) =>
    parseAllDocuments(readFileSync(f, "utf8")).map((d) => {
      expect(d.errors, f).toEqual([]);
      return d.toJS();
    }),
  );
}

describe("k8s manifests", () => {
  const objects = load();
  const of = (kind: string) => objects.filter((o) => o?.kind === kind);
  const deployments = of("Deployment");
  const config = of("ConfigMap").find((c) => c.metadata.name === "agentmesh-config").data;
  const agentNames = deployments
    .map((d) => d.metadata.name)
    .filter((n: string) => n.startsWith("agent-"));
  const pod = (w: K8sObject) => w.spec.template.spec;
  const env = (w: K8sObject) => pod(w).containers[0].env ?? [];

  it("lists every manifest file in the kustomization", () => {
    const base = join(root, "k8s", "base");
    const kustomization = parseAllDocuments(
      readFileSync(join(base, "kustomization.yaml"), "utf8"),
    )[0]!.toJS();
    const files = readdirSync(base).filter(
      (f) => f.endsWith(".yaml") && f !== "kustomization.yaml",
    );
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });

  it("names only variables the code reads", () => {
    const known = new Set(allSettings.map((s) => s.name));
    const set = [
      ...Object.keys(config),
      ...[...deployments, ...of("Job")].flatMap((w) => env(w).map((e: K8sObject) => e.name)),
    ].filter((n) => !["DB_USER", "DB_PASSWORD"].includes(n));
    expect(set.filter((n) => !known.has(n))).toEqual([]);
  });

  it("gives every Deployment its own SPIFFE certificate, readable by uid 10001 through fsGroup", () => {
    const certificates = new Map(of("Certificate").map((c) => [c.spec.secretName, c]));
    expect(deployments.length).toBe(8);
    for (const d of deployments) {
      const name = d.metadata.name;
      const spec = pod(d);
      expect(spec.serviceAccountName).toBe(name);
      expect(spec.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 10001,
        fsGroup: 10001,
      });
      const mtls = spec.volumes.find((v: K8sObject) => v.name === "mtls").projected;
      // 0440: the files belong to root and group fsGroup; the process reads them as that group.
      expect(mtls.defaultMode).toBe(0o440);
      const secret = mtls.sources.find((s: K8sObject) => s.secret).secret.name;
      expect(certificates.get(secret)?.spec.uris).toEqual([
        `spiffe://agentmesh.local/ns/agentmesh/sa/${name}`,
      ]);
      expect(mtls.sources.find((s: K8sObject) => s.configMap).configMap.name).toBe("agentmesh-ca");
      const mount = spec.containers[0].volumeMounts.find((m: K8sObject) => m.name === "mtls");
      expect(mount).toEqual({
        name: "mtls",
        readOnly: true,
        mountPath: `${config.AGENTMESH_CERT_DIR}/${name}`,
      });
    }
    const bundle = of("Bundle")[0];
    expect(bundle.spec.target.configMap.key).toBe("ca.crt");
    expect(of("Namespace")[0].metadata.labels).toMatchObject(
      bundle.spec.target.namespaceSelector.matchLabels,
    );
  });

  it("runs the image's entrypoint with serve/agent args and points every process at the others", () => {
    for (const d of deployments) {
      const c = pod(d).containers[0];
      expect(c.command).toBeUndefined();
      const name = d.metadata.name;
      expect(c.args).toEqual(
        name.startsWith("agent-") ? ["agent", name.slice(6)] : ["serve", name],
      );
      expect(c.envFrom).toEqual([{ configMapRef: { name: "agentmesh-config" } }]);
    }
    const services = new Map(of("Service").map((s) => [s.metadata.name, s]));
    for (const component of ["registry", "planner", "executor", "learning"]) {
      const addr = config[`AGENTMESH_${component.toUpperCase()}_ADDR`];
      const [host, port] = addr.split(":");
      expect(host).toBe(`${component}.agentmesh.svc.cluster.local`);
      expect(services.get(component).spec.ports[0].port).toBe(Number(port));
    }
    const gateway = services.get("gateway").spec.ports[0];
    expect(gateway).toMatchObject({ name: "http", appProtocol: "kubernetes.io/h2c", port: 8080 });
    const route = of("HTTPRoute")[0].spec.rules[0].backendRefs[0];
    expect(route).toEqual({ name: "gateway", port: 8080 });
  });

  it("probes /readyz and /healthz on the metrics port the process serves", () => {
    for (const d of deployments) {
      const c = pod(d).containers[0];
      const metrics = c.ports.find((p: K8sObject) => p.name === "metrics");
      expect(metrics.containerPort).toBe(Number(config.AGENTMESH_METRICS_PORT));
      expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "metrics" });
      expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "metrics" });
    }
  });

  it("gives the database to the components, the gateway and the migrations only, each its own role", () => {
    const secretsOf = (w: K8sObject) =>
      env(w).flatMap((e: K8sObject) =>
        e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef.name] : [],
      );
    for (const d of deployments) {
      const name = d.metadata.name;
      if (name.startsWith("agent-")) {
        expect(secretsOf(d), name).toEqual([]);
        expect(
          env(d).map((e: K8sObject) => e.name),
          name,
        ).not.toContain("DATABASE_URL");
      } else {
        expect(new Set(secretsOf(d)), name).toEqual(new Set(["agentmesh-db-runtime"]));
      }
    }
    const job = of("Job")[0];
    expect(pod(job).containers[0].args).toEqual(["db", "migrate", "--grant", "agentmesh_runtime"]);
    expect(new Set(secretsOf(job))).toEqual(new Set(["agentmesh-db-owner"]));
    const cluster = of("Cluster")[0];
    expect(cluster.spec.bootstrap.initdb.owner).not.toBe("agentmesh_runtime");
    expect(cluster.spec.managed.roles[0]).toMatchObject({ name: "agentmesh_runtime", login: true });
  });

  it("keeps the root filesystem read-only and every path the process writes on a volume", () => {
    for (const w of [...deployments, ...of("Job")]) {
      const c = pod(w).containers[0];
      expect(c.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
      });
      const emptyDirs = new Set(
        pod(w)
          .volumes.filter((v: K8sObject) => v.emptyDir)
          .map((v: K8sObject) => v.name),
      );
      const writable = c.volumeMounts
        .filter((m: K8sObject) => emptyDirs.has(m.name))
        .map((m: K8sObject) => m.mountPath);
      const home =
        env(w).find((e: K8sObject) => e.name === "AGENTMESH_HOME")?.value ?? config.AGENTMESH_HOME;
      expect(writable).toContain(home);
      expect(writable).toContain("/tmp");
      if (c.args[0] === "serve") expect(writable).toContain(config.AGENTMESH_LOG_DIR);
      if (c.args[0] === "serve") {
        const policy = c.volumeMounts.find((m: K8sObject) => m.name === "policy");
        expect(config.AGENTMESH_POLICY.startsWith(`${policy.mountPath}/`)).toBe(true);
        // No subPath: the kubelet swaps a mounted ConfigMap in place and the process reloads it.
        expect(policy.subPath).toBeUndefined();
      }
    }
  });

  it("scales the executor and each agent on the JetStream lag of exactly its consumers, with no CPU HPA", () => {
    expect(of("HorizontalPodAutoscaler")).toEqual([]);
    const scaled = new Map(of("ScaledObject").map((s) => [s.spec.scaleTargetRef.name, s]));
    expect(scaled.get("executor").spec.triggers[0].metadata).toMatchObject({
      stream: "AGENTMESH_RESULTS",
      consumer: "results",
    });
    for (const name of agentNames) {
      const agent = builtinAgents[name.slice(6)]!();
      const consumers = Object.keys(agent.skills).map(jobConsumerName).sort();
      const triggers = scaled.get(name).spec.triggers;
      expect(
        triggers.every(
          (t: K8sObject) => t.type === "nats-jetstream" && t.metadata.stream === "AGENTMESH_JOBS",
        ),
      ).toBe(true);
      expect(triggers.map((t: K8sObject) => t.metadata.consumer).sort()).toEqual(consumers);
    }
  });

  it("has a PodDisruptionBudget for every Deployment", () => {
    const budgets = new Set(
      of("PodDisruptionBudget").map((p) => p.spec.selector.matchLabels["app.kubernetes.io/name"]),
    );
    for (const d of deployments) expect(budgets.has(d.metadata.name), d.metadata.name).toBe(true);
  });

  it("denies by default and opens exactly DNS, NATS, PostgreSQL, Prometheus, the mesh's gRPC and the edge", () => {
    const policies = of("NetworkPolicy");
    expect(policies.find((p) => p.metadata.name === "default-deny").spec).toEqual({
      podSelector: {},
      policyTypes: ["Ingress", "Egress"],
    });
    const ports = new Set<number>();
    for (const p of policies) {
      for (const rule of [...(p.spec.ingress ?? []), ...(p.spec.egress ?? [])]) {
        for (const port of rule.ports ?? []) ports.add(port.port);
      }
    }
    // 53 DNS, 4222 NATS (8222 its monitor for Prometheus and KEDA), 5432 PostgreSQL (8000 and the
    // API server for CloudNativePG's instance manager), 7101-7104 mesh gRPC, 9464 metrics, 8080 edge.
    expect([...ports].sort((a, b) => a - b)).toEqual([
      53, 443, 4222, 5432, 6443, 7101, 7102, 7103, 7104, 8000, 8080, 8222, 9464,
    ]);
  });
});
