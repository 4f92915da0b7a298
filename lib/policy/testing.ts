/**
 * Helpers for tests and benchmarks of the policy: the committed bundle's
 * path, and (from `samples.ts`) peers by name and requests filled
 * generically from descriptors.
 *
 * @example
 * const engine = await openPolicyEngine({ path: committedBundlePath, watch: false });
 * authorize({ peer: meshPeer("executor"), principal: undefined, method, request: sampleRequest(method) });
 */
import { execFileSync } from "node:child_process";
import { cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import type { DescMethod } from "@bufbuild/protobuf";
import { packagePath } from "../config/package-root.js";
import { bundleRevision } from "./bundle.js";
import { tarGz, untar } from "./tar.js";

export {
  meshMethods,
  meshPeer,
  meshServices,
  principal,
  type SampleValues,
  sampleRequest,
} from "./samples.js";

/** The committed policy bundle (`npm run policy:build`), and the data it was built from. */
export const committedBundlePath = packagePath("bundles", "agentmesh.tar.gz");
export const committedDataPath = packagePath("policies", "data.json");

/** A descriptor-shaped stand-in for methods of services we do not generate (health, reflection). */
export function foreignMethod(service: string, name: string): DescMethod {
  return {
    kind: "rpc",
    name,
    parent: { typeName: service },
    methodKind: "unary",
    input: { typeName: `${service}Request`, fields: [] },
  } as unknown as DescMethod;
}

/**
 * A bundle archive with `data` in place of the source bundle's data and a new
 * revision, as `policy build` would make from the changed data.json (no `opa`
 * needed), for tests that roll out a data change.
 */
export async function bundleWithData(
  data: unknown,
  source: string = committedBundlePath,
): Promise<Buffer> {
  const files = untar(gunzipSync(await readFile(source)));
  const dataJson = JSON.stringify(data);
  const wasm = files.get("policy.wasm")!;
  const manifest = JSON.parse(files.get(".manifest")!.toString("utf8")) as Record<string, unknown>;
  manifest.revision = bundleRevision(wasm, dataJson);
  files.set(".manifest", Buffer.from(JSON.stringify(manifest)));
  files.set("data.json", Buffer.from(dataJson));
  return tarGz([...files].map(([name, body]) => [`/${name}`, body] as [string, Buffer]));
}

/** The `opa` CLI (`$OPA`, on PATH or in ~/go/bin), or undefined: tests skip loudly, and fail under CI. */
export function findOpa(): string | undefined {
  for (const candidate of [process.env.OPA, "opa", join(homedir(), "go/bin/opa")]) {
    if (!candidate) continue;
    try {
      execFileSync(candidate, ["version"], { stdio: "ignore" });
      return candidate;
    } catch {
      // try the next one
    }
  }
  if (process.env.CI === "true")
    throw new Error("opa CLI not found; CI installs it with .ci/tools.sh");
  console.warn(
    "\n!!! opa CLI not found: SKIPPING the tests that build policy bundles. Run .ci/tools.sh. !!!\n",
  );
  return undefined;
}

/**
 * A copy of the committed `policies/` folder in `root` with `files` (paths
 * relative to it, e.g. `ext/no_shell.rego`) added or replaced: what an author
 * edits before `policy build`.
 */
export async function scratchPolicies(
  root: string,
  files: Record<string, string> = {},
): Promise<string> {
  const dir = join(root, "policies");
  await cp(packagePath("policies"), dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  return dir;
}
