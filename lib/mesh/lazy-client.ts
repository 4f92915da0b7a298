/**
 * Clients to the other mesh components that dial lazily: the address is
 * looked up on the first call (and again after it changes), so components can
 * be wired before every server has bound its port — the embedded mode starts
 * all four servers on free ports and the registry and learning services call
 * each other.
 *
 * @example
 * const registry = createLazyClient(RegistryService, () => ({ address, server: spiffeId({ name: "registry" }) }), certs);
 * await registry.findAgents({ capability: "text.summarize" });
 */
import type { DescService } from "@bufbuild/protobuf";
import type { Client, MeshChannel } from "../rpc/client.js";
import { createChannel, createClient } from "../rpc/client.js";
import type { CertWatcher } from "../tls/cert-watcher.js";

/** Where a component listens and which SPIFFE ID it must prove. */
export interface Endpoint {
  address: string;
  spiffeId: string;
}

/** A typed client plus the channels it opened, for `close()`. */
export interface LazyClient<S extends DescService> {
  readonly client: Client<S>;
  close(): void;
}

export function createLazyClient<S extends DescService>(
  service: S,
  endpoint: () => Endpoint,
  certs: CertWatcher,
  defaultTimeoutMs = 10_000,
): LazyClient<S> {
  let channel: MeshChannel | undefined;
  let current: Client<S> | undefined;
  let key = "";
  const resolve = (): Client<S> => {
    const e = endpoint();
    const k = `${e.address}|${e.spiffeId}`;
    if (current === undefined || k !== key) {
      channel?.close();
      channel = createChannel({ address: e.address, certs, server: e.spiffeId, defaultTimeoutMs });
      current = createClient(service, channel);
      key = k;
    }
    return current;
  };
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    client[method.localName] = (request: unknown, options?: unknown) =>
      (resolve() as unknown as Record<string, (r: unknown, o?: unknown) => unknown>)[
        method.localName
      ]!(request, options);
  }
  return {
    client: client as Client<S>,
    close: () => {
      channel?.close();
      channel = undefined;
      current = undefined;
    },
  };
}
