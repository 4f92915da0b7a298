import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are checked structurally below.
type K8sObject = any;

const base = join(import.meta.dirname, "..", "k8s", "base");

function load(): K8sObject[] {
  const files = readdirSync(base).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
  return files.flatMap((f) =>
    parseAllDocuments(readFileSync(join(base, f), "utf8")).map((d) => {
      expect(d.errors, f).toEqual([]);
      return d.toJS();
    }),
  );
}

describe("k8s manifests", () => {
  const objects = load();
  const of = (kind: string) => objects.filter((o) => o?.kind === kind);

  it("lists every manifest file in the kustomization", () => {
    const kustomization = parseAllDocuments(
      readFileSync(join(base, "kustomization.yaml"), "utf8"),
    )[0]!.toJS();
    const files = readdirSync(base).filter(
      (f) => f.endsWith(".yaml") && f !== "kustomization.yaml",
    );
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });

  it("gives every Deployment its own SPIFFE certificate, mounted read-only", () => {
    const certificates = new Map(of("Certificate").map((c) => [c.spec.secretName, c]));
    expect(of("Deployment").length).toBeGreaterThanOrEqual(5);
    for (const deployment of of("Deployment")) {
      const name = deployment.metadata.name;
      const pod = deployment.spec.template.spec;
      expect(pod.serviceAccountName).toBe(name);
      const secret = pod.volumes.find((v: K8sObject) => v.name === "mtls").secret.secretName;
      const certificate = certificates.get(secret);
      expect(certificate, `certificate for ${name}`).toBeDefined();
      expect(certificate.spec.uris).toEqual([`spiffe://agentmesh.local/ns/agentmesh/sa/${name}`]);
      expect(certificate.spec.usages).toEqual(
        expect.arrayContaining(["client auth", "server auth"]),
      );
      const mount = pod.containers[0].volumeMounts.find((m: K8sObject) => m.name === "mtls");
      expect(mount).toMatchObject({
        readOnly: true,
        mountPath: `/var/run/agentmesh/certs/${name}`,
      });
    }
  });

  it("runs every container unprivileged", () => {
    for (const deployment of of("Deployment")) {
      const pod = deployment.spec.template.spec;
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      for (const container of pod.containers) {
        expect(container.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
        });
      }
    }
  });

  it("exposes only mTLS gRPC ports through Services", () => {
    for (const service of of("Service")) {
      for (const port of service.spec.ports) expect(port.name).toBe("grpc-mtls");
    }
  });
});
