/**
 * The metadata a capability carries at dispatch: the tool registered under
 * its name (by an agent offering it, or by an operator) gives its auth scope,
 * side effect and rate limit. Every executor replica reads the whole (small)
 * table at most every `ttlMs`, shared by concurrent lookups; when the store
 * cannot be read the last answer is kept.
 *
 * @example
 * const tools = new CapabilityTools({ store });
 * const meta = await tools.get("shell.exec"); // { authScope: "tools:shell", sideEffect: "read_only", ... }
 */
import { fromJson } from "@bufbuild/protobuf";
import { SideEffect, ToolSchema } from "../../gen/agentmesh/v1/registry_pb.js";
import type { Store } from "../../lib/store/store.js";

/** A capability's declared metadata, as the policy and the limiter see it. */
export interface CapabilityMeta {
  /** Scope the goal's principal must hold; "" for none. */
  authScope: string;
  /** `read_only`, `idempotent`, `destructive`, or "" when not declared. */
  sideEffect: string;
  /** Dispatches per second per tenant across the mesh; absent or 0: unlimited. */
  rateLimit?: { perSecond: number; burst: number };
}

/** The policy's name of a side effect: the enum value's name without its prefix, lower case. */
export function sideEffectName(value: SideEffect): string {
  return value === SideEffect.UNSPECIFIED ? "" : (SideEffect[value] ?? "").toLowerCase();
}

export class CapabilityTools {
  readonly #store: Pick<Store, "agents">;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #byName = new Map<string, CapabilityMeta>();
  #readAt = Number.NEGATIVE_INFINITY;
  #reading: Promise<void> | undefined;

  constructor(options: { store: Pick<Store, "agents">; ttlMs?: number; now?: () => number }) {
    this.#store = options.store;
    this.#ttlMs = options.ttlMs ?? 2000;
    this.#now = options.now ?? (() => performance.now());
  }

  /** The capability's metadata; undefined when no tool declares any. */
  async get(capability: string): Promise<CapabilityMeta | undefined> {
    if (this.#now() - this.#readAt >= this.#ttlMs) await this.#refresh();
    return this.#byName.get(capability);
  }

  #refresh(): Promise<void> {
    this.#reading ??= this.#store.agents
      .capabilityTools()
      .then((records) => {
        const next = new Map<string, CapabilityMeta>();
        for (const r of records) {
          const tool = fromJson(ToolSchema, r.spec, { ignoreUnknownFields: true });
          const limit = tool.rateLimit;
          next.set(r.name, {
            authScope: tool.authScope,
            sideEffect: sideEffectName(tool.sideEffect),
            ...(limit && limit.perSecond > 0
              ? { rateLimit: { perSecond: limit.perSecond, burst: Math.max(1, limit.burst) } }
              : {}),
          });
        }
        this.#byName = next;
        this.#readAt = this.#now();
      })
      .catch(() => {
        // The store away: keep the last answer and try again at the next lookup.
      })
      .finally(() => {
        this.#reading = undefined;
      });
    return this.#reading;
  }
}
