/**
 * Test helpers for code that serves or calls mesh RPCs: a throwaway CA with
 * certificates for the names you need, and simple authorizers. Real
 * certificates, real sockets, no mocks.
 *
 * @example
 * const pki = await createTestPki(["registry", "executor"]);
 * const server = createServer({ certs: await pki.watch("registry"), authorizer: allowAll });
 * server.add(RegistryService, impl);
 * await server.listen();
 * const channel = createChannel({ address: server.address, certs: await pki.watch("executor"), server: pki.id("registry") });
 * // ...
 * await pki.cleanup();
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, createFileRegistry, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, file_google_protobuf_wrappers } from "@bufbuild/protobuf/wkt";
import { spiffeId } from "../identity/spiffe.js";
import { type CertWatcher, watchCertificates } from "../tls/cert-watcher.js";
import { certPaths, type IssueOptions, initCa, issueCertificate } from "../tls/dev-ca.js";
import type { Authorizer } from "./authorizer.js";
import type { AnyHandler, HandlerContext } from "./handler.js";

export interface TestPki {
  /** The temporary cert folder (`<dir>/<name>/tls.crt` ...). */
  dir: string;
  /** SPIFFE ID of `name` in the default trust domain and namespace. */
  id(name: string): string;
  /** Folder of `name`'s files. */
  path(name: string): string;
  /** (Re)issues `name`'s certificate. */
  issue(name: string, options?: Omit<IssueOptions, "certDir" | "name">): Promise<void>;
  /** A watcher over `name`'s files (closed by `cleanup`). */
  watch(name: string, pollIntervalMs?: number): Promise<CertWatcher>;
  /** Closes watchers and removes the folder. */
  cleanup(): Promise<void>;
}

/** A fresh CA in a temporary folder with certificates for `names`. */
export async function createTestPki(names: readonly string[] = []): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), "agentmesh-pki-"));
  await initCa({ certDir: dir });
  const watchers: CertWatcher[] = [];
  const pki: TestPki = {
    dir,
    id: (name) => spiffeId({ name }),
    path: (name) => certPaths(dir, name).dir,
    async issue(name, options) {
      await issueCertificate({ certDir: dir, name, ...options });
    },
    async watch(name, pollIntervalMs = 0) {
      const w = await watchCertificates({ dir: certPaths(dir, name).dir, pollIntervalMs });
      watchers.push(w);
      return w;
    },
    async cleanup() {
      for (const w of watchers) w.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  for (const name of names) await pki.issue(name);
  return pki;
}

/** Allows every call from any verified peer; trusts no principal. Tests only. */
export const allowAll: Authorizer = () => ({
  allow: true,
  reason: "test: allow all",
  principalTrusted: false,
});

/** Allows only the given peer names (service accounts); trusts principals from `delegates`. */
export function allowNames(
  names: readonly string[],
  delegates: readonly string[] = [],
): Authorizer {
  return ({ peer }) => {
    const name = peer?.name ?? "";
    return names.includes(name)
      ? { allow: true, reason: "test: known peer", principalTrusted: delegates.includes(name) }
      : {
          allow: false,
          reason: `peer ${peer?.spiffeId ?? "unknown"} is not allowed`,
          principalTrusted: false,
        };
  };
}

/**
 * A descriptor-only echo service with one method of each kind, built at run
 * time from a FileDescriptorProto (no .proto file, no generated code): tests
 * and `bench/rpc` use it, and it proves the adapter needs nothing per service.
 *
 * - `Echo(BytesValue) → BytesValue` unary
 * - `Count(UInt32Value) → stream UInt32Value` server streaming: 0..n-1
 * - `Sum(stream UInt32Value) → UInt32Value` client streaming
 * - `Chat(stream BytesValue) → stream BytesValue` bidi
 */
export function echoService(): DescService {
  echo ??= buildEchoService();
  return echo;
}

let echo: DescService | undefined;

function buildEchoService(): DescService {
  const wrappers = ".google.protobuf.";
  const proto = create(FileDescriptorProtoSchema, {
    name: "agentmesh/testing/echo.proto",
    package: "agentmesh.testing",
    dependency: ["google/protobuf/wrappers.proto"],
    syntax: "proto3",
    service: [
      {
        name: "EchoService",
        method: [
          { name: "Echo", inputType: `${wrappers}BytesValue`, outputType: `${wrappers}BytesValue` },
          {
            name: "Count",
            inputType: `${wrappers}UInt32Value`,
            outputType: `${wrappers}UInt32Value`,
            serverStreaming: true,
          },
          {
            name: "Sum",
            inputType: `${wrappers}UInt32Value`,
            outputType: `${wrappers}UInt32Value`,
            clientStreaming: true,
          },
          {
            name: "Chat",
            inputType: `${wrappers}BytesValue`,
            outputType: `${wrappers}BytesValue`,
            clientStreaming: true,
            serverStreaming: true,
          },
        ],
      },
    ],
  });
  const registry = createFileRegistry(proto, (name) =>
    name === "google/protobuf/wrappers.proto" ? file_google_protobuf_wrappers : undefined,
  );
  const service = registry.getService("agentmesh.testing.EchoService");
  if (!service) throw new Error("echo service descriptor did not build");
  return service;
}

/** A straightforward implementation of `echoService()`. */
export const echoImpl: Record<string, AnyHandler> = {
  echo: (req: { value: Uint8Array }) => ({ value: req.value }),
  async *count(req: { value: number }, ctx: HandlerContext) {
    for (let i = 0; i < req.value && !ctx.signal.aborted; i++) yield { value: i };
  },
  async sum(reqs: AsyncIterable<{ value: number }>) {
    let total = 0;
    for await (const r of reqs) total += r.value;
    return { value: total };
  },
  async *chat(reqs: AsyncIterable<{ value: Uint8Array }>) {
    for await (const r of reqs) yield { value: r.value };
  },
};
