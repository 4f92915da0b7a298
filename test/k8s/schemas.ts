/**
 * Strict JSON schemas for kubeconform, generated offline from sources the Go
 * module proxy serves (versions pinned in `.ci/k8s-tools.sh`, downloaded there
 * with `go mod download`): Kubernetes' OpenAPI (swagger.json) and the CRDs of
 * cert-manager, trust-manager, KEDA and the Gateway API. Laid out as
 * `<group>/<kind>_<version>.json` for kubeconform's
 * `-schema-location '<dir>/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'`,
 * and cached per set of versions so CI generates them once.
 *
 * Strict means what kubeconform's openapi2jsonschema --strict does: every
 * object with declared properties refuses any other (a misspelled field fails).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

/** The sources, as `.ci/k8s-tools.sh` pins them. */
export interface SchemaSources {
  kubernetes: string;
  certManager: string;
  trustManager: string;
  keda: string;
  gatewayApi: string;
}

/** The pinned versions, read from `.ci/k8s-tools.sh` (the one place they are written). */
export function pinnedSources(toolsScript: string): SchemaSources {
  const text = readFileSync(toolsScript, "utf8");
  const pin = (name: string) => {
    const m = text.match(new RegExp(`^${name}=(\\S+)$`, "m"));
    if (!m?.[1]) throw new Error(`${toolsScript} pins no ${name}`);
    return m[1];
  };
  return {
    kubernetes: pin("KUBERNETES_VERSION"),
    certManager: pin("CERT_MANAGER_VERSION"),
    trustManager: pin("TRUST_MANAGER_VERSION"),
    keda: pin("KEDA_VERSION"),
    gatewayApi: pin("GATEWAY_API_VERSION"),
  };
}

/** The directory of a module version in the Go module cache (downloaded by .ci/k8s-tools.sh). */
function moduleDir(module: string, version: string): string {
  const cache = execFileSync("go", ["env", "GOMODCACHE"], { encoding: "utf8" }).trim();
  // The module cache escapes upper-case letters as !lower.
  const escaped = module.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
  const dir = join(cache, `${escaped}@${version}`);
  if (!existsSync(dir))
    throw new Error(`${module}@${version} is not in ${cache}: run .ci/k8s-tools.sh`);
  return dir;
}

type Json = Record<string, unknown>;

/** Adds `additionalProperties: false` wherever properties are declared and nothing else is allowed. */
function strict(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strict);
  if (typeof schema !== "object" || schema === null) return schema;
  const out: Json = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] = k === "enum" || k === "required" || k === "example" ? v : strict(v);
  }
  if (out["x-kubernetes-int-or-string"] === true) {
    delete out.type;
    out.anyOf = [{ type: "integer" }, { type: "string" }];
  }
  if (out.format === "int-or-string") {
    delete out.type;
    delete out.format;
    out.anyOf = [{ type: "integer" }, { type: "string" }];
  }
  if (
    out.properties !== undefined &&
    out.additionalProperties === undefined &&
    out["x-kubernetes-preserve-unknown-fields"] !== true
  ) {
    out.additionalProperties = false;
  }
  return out;
}

function write(dir: string, group: string, kind: string, version: string, schema: Json) {
  mkdirSync(join(dir, group), { recursive: true });
  writeFileSync(join(dir, group, `${kind.toLowerCase()}_${version}.json`), JSON.stringify(schema));
}

/** Every kind of Kubernetes' OpenAPI, each with the closure of the definitions it references. */
function fromSwagger(swaggerPath: string, dir: string) {
  const swagger = JSON.parse(readFileSync(swaggerPath, "utf8")) as {
    definitions: Record<string, Json>;
  };
  const defs = Object.fromEntries(
    Object.entries(swagger.definitions).map(([k, v]) => [k, strict(v) as Json]),
  );
  const closure = (name: string, seen = new Set<string>()) => {
    if (seen.has(name)) return seen;
    seen.add(name);
    const walk = (v: unknown) => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (typeof v === "object" && v !== null) {
        for (const [k, x] of Object.entries(v)) {
          if (k === "$ref" && typeof x === "string") closure(x.replace("#/definitions/", ""), seen);
          else walk(x);
        }
      }
    };
    walk(defs[name]);
    return seen;
  };
  for (const [name, def] of Object.entries(defs)) {
    const gvks = def["x-kubernetes-group-version-kind"] as
      | { group: string; version: string; kind: string }[]
      | undefined;
    if (!gvks) continue;
    const definitions = Object.fromEntries([...closure(name)].map((n) => [n, defs[n]]));
    for (const { group, version, kind } of gvks) {
      write(dir, group === "" ? version : group, kind, version, {
        $schema: "http://json-schema.org/draft-04/schema#",
        ...def,
        definitions,
      });
    }
  }
}

/** Every served version of every CRD in `crdDir`. */
function fromCrds(crdDir: string, dir: string) {
  for (const file of readdirSync(crdDir).filter((f) => /\.ya?ml$/.test(f))) {
    for (const doc of parseAllDocuments(readFileSync(join(crdDir, file), "utf8"))) {
      const crd = doc.toJS() as {
        kind?: string;
        spec?: {
          group: string;
          names: { kind: string };
          versions: { name: string; schema?: { openAPIV3Schema: Json } }[];
        };
      };
      if (crd?.kind !== "CustomResourceDefinition" || !crd.spec) continue;
      for (const v of crd.spec.versions) {
        if (!v.schema) continue;
        const schema = strict(v.schema.openAPIV3Schema) as Json;
        // apiVersion, kind and metadata are checked by the API server, not the CRD.
        const props = (schema.properties ?? {}) as Json;
        props.apiVersion = { type: "string" };
        props.kind = { type: "string" };
        props.metadata = { type: "object" };
        schema.properties = props;
        write(dir, crd.spec.group, crd.spec.names.kind, v.name, schema);
      }
    }
  }
}

/** The schema directory for `sources`, generated into `cacheRoot` unless already there. */
export function ensureSchemas(sources: SchemaSources, cacheRoot: string): string {
  const key = Object.entries(sources)
    .map(([k, v]) => `${k}-${v}`)
    .join("_");
  const dir = join(cacheRoot, key);
  if (existsSync(join(dir, "complete"))) return dir;
  mkdirSync(dir, { recursive: true });
  fromSwagger(
    join(moduleDir("k8s.io/kubernetes", sources.kubernetes), "api", "openapi-spec", "swagger.json"),
    dir,
  );
  fromCrds(
    join(moduleDir("github.com/cert-manager/cert-manager", sources.certManager), "deploy", "crds"),
    dir,
  );
  fromCrds(
    join(
      moduleDir("github.com/cert-manager/trust-manager", sources.trustManager),
      "deploy",
      "crds",
    ),
    dir,
  );
  fromCrds(
    join(moduleDir("github.com/kedacore/keda/v2", sources.keda), "config", "crd", "bases"),
    dir,
  );
  fromCrds(
    join(moduleDir("sigs.k8s.io/gateway-api", sources.gatewayApi), "config", "crd", "standard"),
    dir,
  );
  writeFileSync(join(dir, "complete"), new Date().toISOString());
  return dir;
}
