/**
 * The manifests as a platform engineer checks them before `kubectl apply -k`:
 * `kustomize build` of the base and every overlay, validated by kubeconform in
 * strict mode against schemas generated from the pinned sources (Kubernetes'
 * OpenAPI, cert-manager, trust-manager, KEDA, Gateway API; test/k8s/schemas.ts).
 * CloudNativePG's Cluster is the one kind left out: its CRDs are not served by
 * the Go module proxy, so it is skipped by name and checked structurally below.
 * Negative controls prove the validation is not vacuous.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { ensureSchemas, pinnedSources } from "./k8s/schemas.js";

const root = join(import.meta.dirname, "..");
const overlays = ["k8s/base", "k8s/overlays/production", "k8s/overlays/spiffe"];
const skipped = "postgresql.cnpg.io/v1/Cluster";

function has(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: "ignore", env: toolEnv() }).status === 0;
}

function toolEnv() {
  return { ...process.env, PATH: `${process.env.HOME}/go/bin:${process.env.PATH}` };
}

const tools = has("kustomize", ["version"]) && has("kubeconform", ["-v"]) && has("go", ["version"]);
if (!tools) {
  const message = "kustomize, kubeconform or go missing: run .ci/k8s-tools.sh";
  if (process.env.CI === "true") throw new Error(message);
  console.warn(`SKIP k8s validation: ${message}`);
}

/** `kustomize build <dir>` as text. */
export function render(dir: string): string {
  return execFileSync("kustomize", ["build", join(root, dir)], {
    encoding: "utf8",
    env: toolEnv(),
  });
}

function kubeconform(manifests: string, schemaDir: string) {
  const result = spawnSync(
    "kubeconform",
    [
      "-strict",
      "-summary",
      "-output",
      "json",
      "-skip",
      skipped,
      "-schema-location",
      `${schemaDir}/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`,
      "-",
    ],
    { input: manifests, encoding: "utf8", env: toolEnv() },
  );
  const report = JSON.parse(result.stdout || "{}") as {
    resources?: { kind: string; name: string; status: string; msg: string }[];
    summary?: { valid: number; invalid: number; errors: number; skipped: number };
  };
  return { status: result.status, report, stderr: result.stderr };
}

describe.skipIf(!tools)("k8s manifests validate strictly offline", () => {
  const schemaDir = tools
    ? ensureSchemas(
        pinnedSources(join(root, ".ci", "k8s-tools.sh")),
        join(root, "node_modules", ".cache", "agentmesh-k8s-schemas"),
      )
    : "";

  for (const dir of overlays) {
    it(`${dir}: every object valid, only CloudNativePG's Cluster skipped`, () => {
      const manifests = render(dir);
      const { status, report } = kubeconform(manifests, schemaDir);
      const problems = (report.resources ?? []).filter(
        (r) => r.status !== "statusValid" && r.status !== "statusSkipped",
      );
      expect(problems).toEqual([]);
      expect(status).toBe(0);
      const kinds = parseAllDocuments(manifests).map((d) => (d.toJS() as { kind: string }).kind);
      expect(report.summary?.valid).toBe(kinds.filter((k) => k !== "Cluster").length);
      expect(report.summary?.skipped).toBe(kinds.filter((k) => k === "Cluster").length);
    }, 120_000);
  }

  it("fails a misspelled field and a wrong enum (negative controls)", () => {
    const docs = parseAllDocuments(render("k8s/overlays/production")).map((d) => d.toJS());
    const deployment = docs.find((d) => d.kind === "Deployment" && d.metadata.name === "executor");
    const certificate = docs.find(
      (d) => d.kind === "Certificate" && d.metadata.name === "executor-mtls",
    );
    const scaled = docs.find((d) => d.kind === "ScaledObject" && d.metadata.name === "executor");
    const route = docs.find((d) => d.kind === "HTTPRoute");

    const misspelled = structuredClone(deployment);
    misspelled.spec.replica = misspelled.spec.replicas;
    delete misspelled.spec.replicas;
    const deep = structuredClone(deployment);
    deep.spec.template.spec.containers[0].readinesProbe =
      deep.spec.template.spec.containers[0].readinessProbe;
    const wrongEnum = structuredClone(certificate);
    wrongEnum.spec.privateKey.algorithm = "DSA";
    const wrongKeda = structuredClone(scaled);
    wrongKeda.spec.minReplicaCounts = 1;
    const wrongRoute = structuredClone(route);
    wrongRoute.spec.rules[0].matches[0].path.type = "Prefix";

    for (const [what, bad, expected] of [
      ["replica", misspelled, /replica/],
      ["readinesProbe", deep, /readinesProbe/],
      ["algorithm DSA", wrongEnum, /algorithm|DSA|must be one of/],
      ["minReplicaCounts", wrongKeda, /minReplicaCounts/],
      ["path type Prefix", wrongRoute, /type|Prefix|must be one of/],
    ] as const) {
      const { status, report } = kubeconform(stringify(bad), schemaDir);
      expect(status, what).not.toBe(0);
      expect(report.resources?.[0]?.status, what).toBe("statusInvalid");
      expect(report.resources?.[0]?.msg, what).toMatch(expected);
    }
  }, 120_000);
});
