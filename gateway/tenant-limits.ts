/**
 * Per-tenant admission at the gateway: a token bucket for the request rate,
 * a counter of open server streams, and the limits on what one request may
 * cost (its bytes, nesting, longest list and values; see `request-shape.ts`).
 * Each tenant's limits come from its record (`rate_limit_per_second`,
 * `max_concurrent_streams`, 0 meaning the gateway default; `limits` keys
 * `maxRequestBytes`, `maxRequestDepth`, `maxListLength`, `maxRequestValues`)
 * and are re-read every `refreshMs`. Over the rate or the streams the call is
 * RESOURCE_EXHAUSTED with `retryAfterMs` (sent as `retry-after`); a suspended
 * tenant's calls are FAILED_PRECONDITION "tenant suspended".
 *
 * With `shared` (the gateway passes the store's token buckets) the rate is
 * one bucket for the whole mesh: N gateway replicas together admit the
 * tenant's rate, not N times it. When the shared bucket cannot be reached
 * the replica falls back to its own in-memory bucket (fail open, bounded:
 * at most N times the rate while the store is away; ADR-013). With
 * `sharedStreams` a tenant's open streams are counted for the whole mesh too:
 * each is a leased row in the store, renewed by this replica in one statement
 * per interval and deleted when the stream ends; when the store is away the
 * replica counts its own streams (fail open, bounded the same way).
 *
 * @example
 * const limits = createTenantLimits({ defaultRatePerSecond: 100, lookup: (t) => store.tenants.find(t) });
 * await limits.admit("acme");           // throws RESOURCE_EXHAUSTED when over the rate
 * const release = await limits.openStream("acme"); // throws when too many streams
 * release();
 */
import { randomUUID } from "node:crypto";
import { create, type JsonObject } from "@bufbuild/protobuf";
import {
  type RequestLimits as RequestLimitsMessage,
  RequestLimitsSchema,
} from "../gen/agentmesh/v1/admin_pb.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import type { BucketShape, BucketTake } from "../lib/store/rate-bucket-repository.js";
import { exhausted } from "./errors.js";
import type { ShapeLimits } from "./request-shape.js";

/** What one request may cost. */
export interface RequestLimits extends ShapeLimits {
  /** Largest request message in bytes (after decompression). */
  maxBytes: number;
}

/**
 * The shipped defaults. A goal input at these limits costs the mesh well under
 * a second end to end; tenants that need more get it in their record.
 */
export const defaultRequestLimits: RequestLimits = {
  maxBytes: 1024 * 1024,
  maxDepth: 32,
  maxListLength: 10_000,
  maxValues: 20_000,
};

/**
 * The keys of a tenant record's `limits` that override each request limit:
 * the field names of the API's `RequestLimits`, so the record stores the
 * message's non-zero fields as they are.
 */
const requestLimitKeys = {
  maxBytes: "maxRequestBytes",
  maxDepth: "maxRequestDepth",
  maxListLength: "maxListLength",
  maxValues: "maxRequestValues",
} as const satisfies Record<keyof RequestLimits, keyof RequestLimitsMessage>;

/** A tenant record's `limits` entries for an API `RequestLimits` (its non-zero fields). */
export function requestLimitsRecord(message: RequestLimitsMessage | undefined): JsonObject {
  const out: JsonObject = {};
  for (const key of Object.values(requestLimitKeys)) {
    const value = message?.[key] ?? 0;
    if (value > 0) out[key] = value;
  }
  return out;
}

/** The API `RequestLimits` of a tenant record's `limits` (0 where the default applies). */
export function requestLimitsMessage(limits: JsonObject | undefined): RequestLimitsMessage {
  const own = requestLimitsOf(limits, { maxBytes: 0, maxDepth: 0, maxListLength: 0, maxValues: 0 });
  const out = create(RequestLimitsSchema);
  for (const [field, key] of Object.entries(requestLimitKeys) as [keyof RequestLimits, string][]) {
    (out as unknown as Record<string, number>)[key] = own[field];
  }
  return out;
}

/** `defaults` with a tenant's overrides (positive integers) applied. */
export function requestLimitsOf(
  overrides: JsonObject | undefined,
  defaults: RequestLimits,
): RequestLimits {
  const out = { ...defaults };
  for (const [field, key] of Object.entries(requestLimitKeys) as [keyof RequestLimits, string][]) {
    const value = overrides?.[key];
    if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) out[field] = value;
  }
  return out;
}

export interface TenantLimitValues {
  /** Sustained requests per second; 0 means the default. */
  rateLimitPerSecond: number;
  /** Open server streams; 0 means the default. */
  maxConcurrentStreams: number;
  /** Further limits of the tenant's record; see `requestLimitsOf`. */
  limits?: JsonObject;
  /** Set while the tenant is suspended: its calls are refused. */
  suspendedAt?: Date | null;
}

/** The mesh-wide bucket of a tenant's request rate (`store.buckets.take`). */
export interface SharedRate {
  /** Takes up to `want` tokens (`store.buckets.take`). */
  take(key: string, shape: BucketShape, want: number): Promise<BucketTake>;
  /**
   * Seconds of the tenant's rate a replica takes from the shared bucket at
   * once and spends locally (unspent ones lapse after twice that). Default
   * 0.05: one statement per 50 ms of a busy tenant's traffic per replica;
   * at low rates one token at a time, so the mesh admits exactly the limit.
   */
  leaseSeconds?: number;
  /** False while the store is known to be away: the local bucket answers at once. Default always true. */
  available?: () => boolean;
  /** Called when the shared bucket failed and the local one answered. */
  onFallback?: (err: unknown) => void;
}

/** Mesh-wide leases of open streams (`store.streams`). */
export interface SharedStreams {
  /** This replica's name in the leases (unique per process). */
  instance: string;
  /** Leases a slot; false when the tenant holds its limit across the mesh. */
  open(req: {
    tenantId: string;
    instance: string;
    streamId: string;
    limit: number;
    ttlMs: number;
  }): Promise<boolean>;
  /** Renews every lease of the instance. */
  renew(instance: string, ttlMs: number): Promise<number>;
  /** Ends one lease. */
  close(instance: string, streamId: string): Promise<void>;
  /**
   * How long a lease lives unless renewed: how long a crashed replica's
   * streams still count. Renewed every third of it. Default 30 s.
   */
  leaseMs?: number;
  /** False while the store is known to be away: streams are counted locally. Default always true. */
  available?: () => boolean;
  /** Called when the store failed and the local count answered. */
  onFallback?: (err: unknown) => void;
}

/** The shared bucket key of a tenant's request rate. */
export function requestBucketKey(tenantId: string): string {
  return `requests:${tenantId}`;
}

export interface TenantLimitsOptions {
  /** Requests per second per tenant when the tenant sets none. Default 200. */
  defaultRatePerSecond?: number;
  /** Bucket size in seconds of rate (burst). Default 2 (a burst of 2 s worth of requests). */
  burstSeconds?: number;
  /** Open streams per tenant when the tenant sets none. Default 100. */
  defaultMaxStreams?: number;
  /** What one request may cost when the tenant sets nothing. Default `defaultRequestLimits`. */
  defaultRequest?: Partial<RequestLimits>;
  /** The tenant's own limits; undefined for the defaults. Errors fall back to the defaults. */
  lookup?: (tenantId: string) => Promise<TenantLimitValues | undefined>;
  /**
   * How long a looked-up limit is used before looking again: how long another
   * replica's change (a suspension, a new rate) takes to apply here. Default 5 s.
   */
  refreshMs?: number;
  /** One bucket for the whole mesh; without it each replica has its own. */
  shared?: SharedRate;
  /** Open streams counted for the whole mesh; without it each replica counts its own. */
  sharedStreams?: SharedStreams;
  /** Clock in ms (tests). Default `performance.now`-based monotonic time. */
  now?: () => number;
}

export interface TenantLimits {
  /** Takes one request token; RESOURCE_EXHAUSTED when the bucket is empty. */
  admit(tenantId: string): Promise<void>;
  /** Counts an open stream; the returned function ends it (idempotent). */
  openStream(tenantId: string): Promise<() => void>;
  /** Open streams of a tenant on this replica (metrics, tests). */
  streams(tenantId: string): number;
  /** What one request of the tenant may cost (its record's, once `admit` has run; else the defaults). */
  request(tenantId: string): RequestLimits;
  /** Reads the tenant's limits again before its next request (after an admin change). */
  forget(tenantId: string): void;
  /** Stops renewing stream leases (the replica is closing). */
  stop(): void;
}

interface TenantState {
  rate: number;
  burst: number;
  maxStreams: number;
  request: RequestLimits;
  suspended: boolean;
  /** Tokens taken from the shared bucket and not yet spent, and until when they may be. */
  leased: number;
  leasedUntil: number;
  /** The take from the shared bucket in flight, which waiting requests share. */
  taking: Promise<BucketTake | undefined> | undefined;
  /** Read the limits again before admitting (set by `forget`). */
  stale: boolean;
  tokens: number;
  last: number;
  streams: number;
  refreshAt: number;
  refreshing: Promise<void> | undefined;
}

export function createTenantLimits(options: TenantLimitsOptions = {}): TenantLimits {
  const defaultRate = options.defaultRatePerSecond ?? 200;
  const burstSeconds = options.burstSeconds ?? 2;
  const defaultStreams = options.defaultMaxStreams ?? 100;
  const defaultRequest = { ...defaultRequestLimits, ...options.defaultRequest };
  const refreshMs = options.refreshMs ?? 5000;
  const shared = options.shared;
  const leaseSeconds = shared?.leaseSeconds ?? 0.05;

  /**
   * Leases `leaseSeconds` of the tenant's rate from the shared bucket into
   * `state.leased`; undefined when the store did not answer.
   */
  const takeShared = async (
    tenantId: string,
    state: TenantState,
  ): Promise<BucketTake | undefined> => {
    try {
      const want = Math.max(1, Math.floor(state.rate * leaseSeconds));
      const take = await shared!.take(
        requestBucketKey(tenantId),
        { rate: state.rate, burst: state.burst },
        want,
      );
      if (take.admitted) {
        state.leased = take.granted - 1; // one is the taking request's
        state.leasedUntil = now() + 2000 * leaseSeconds;
      }
      return take;
    } catch (err) {
      shared!.onFallback?.(err);
      return undefined;
    }
  };
  const now = options.now ?? (() => performance.now());
  const lookup = options.lookup;
  const tenants = new Map<string, TenantState>();
  const sharedStreams = options.sharedStreams;
  const leaseMs = sharedStreams?.leaseMs ?? 30_000;
  // One renewal statement per third of the lease for all of this replica's streams.
  let leases = 0;
  let stopped = false;
  let renewTimer: ReturnType<typeof setInterval> | undefined;
  const renewing = () => {
    leases++;
    if (renewTimer || stopped || !sharedStreams) return;
    renewTimer = setInterval(() => {
      if (leases <= 0) {
        clearInterval(renewTimer);
        renewTimer = undefined;
        return;
      }
      sharedStreams
        .renew(sharedStreams.instance, leaseMs)
        .catch((err: unknown) => sharedStreams.onFallback?.(err));
    }, leaseMs / 3);
    renewTimer.unref?.();
  };

  const apply = (state: TenantState, values: TenantLimitValues | undefined) => {
    state.rate = values && values.rateLimitPerSecond > 0 ? values.rateLimitPerSecond : defaultRate;
    state.burst = Math.max(1, state.rate * burstSeconds);
    state.maxStreams =
      values && values.maxConcurrentStreams > 0 ? values.maxConcurrentStreams : defaultStreams;
    state.request = requestLimitsOf(values?.limits, defaultRequest);
    state.suspended = Boolean(values?.suspendedAt);
    state.tokens = Math.min(state.tokens, state.burst);
  };

  const refresh = (tenantId: string, state: TenantState): Promise<void> => {
    state.refreshing ??= (async () => {
      let values: TenantLimitValues | undefined;
      try {
        values = lookup ? await lookup(tenantId) : undefined;
      } catch {
        values = undefined; // an unreachable store must not lock tenants out
      }
      apply(state, values);
      state.refreshAt = now() + refreshMs;
      state.refreshing = undefined;
    })();
    return state.refreshing;
  };

  const fresh = (): TenantState => ({
    rate: defaultRate,
    burst: Math.max(1, defaultRate * burstSeconds),
    maxStreams: defaultStreams,
    request: defaultRequest,
    suspended: false,
    leased: 0,
    leasedUntil: 0,
    taking: undefined,
    stale: false,
    tokens: Math.max(1, defaultRate * burstSeconds),
    last: now(),
    streams: 0,
    refreshAt: 0,
    refreshing: undefined,
  });

  // A tenant's first requests wait for its limits once, together.
  const starting = new Map<string, Promise<TenantState>>();
  const stateOf = (tenantId: string): Promise<TenantState> => {
    let p = starting.get(tenantId);
    if (p === undefined) {
      const state = fresh();
      p = refresh(tenantId, state).then(() => {
        state.tokens = state.burst;
        state.last = now();
        tenants.set(tenantId, state);
        starting.delete(tenantId);
        return state;
      });
      starting.set(tenantId, p);
    }
    return p;
  };

  return {
    async admit(tenantId) {
      const state = tenants.get(tenantId) ?? (await stateOf(tenantId));
      // Re-read the tenant's limits in the background; this request uses those in force.
      if (lookup && state.refreshAt <= now()) {
        const refreshing = state.refreshing ?? refresh(tenantId, state);
        // After an admin change on this replica the new limits apply from the next request.
        if (state.stale) await refreshing;
        state.stale = false;
      }
      if (state.suspended) {
        throw new MeshError(Code.FailedPrecondition, `tenant ${tenantId} is suspended`, {
          details: { reason: "tenant suspended" },
        });
      }
      if (shared && (shared.available?.() ?? true)) {
        // Requests that find no leased token wait for the one take in flight and
        // share what it brought: each taking its own lease at once drew a burst
        // of 25 calls as 25 leases of 50 ms, more than the whole bucket.
        for (;;) {
          if (state.leased >= 1 && now() < state.leasedUntil) {
            state.leased -= 1;
            return;
          }
          if (state.taking !== undefined) {
            // Its tokens may be enough for this request too: look again once it is back.
            // After a refusal this request asks for itself, so usage counts every refusal.
            if ((await state.taking)?.admitted) continue;
          }
          // Cleared before anyone waiting on it resumes.
          const taking: Promise<BucketTake | undefined> = takeShared(tenantId, state).finally(
            () => {
              if (state.taking === taking) state.taking = undefined;
            },
          );
          state.taking = taking;
          const take = await taking;
          if (take === undefined) break; // the store is away: the local bucket decides
          if (take.admitted) return; // one of its tokens is this request's
          throw tooMany(
            `tenant ${tenantId} is over its rate of ${state.rate} requests/s`,
            take.retryAfterMs,
          );
        }
      }
      const t = now();
      state.tokens = Math.min(state.burst, state.tokens + ((t - state.last) * state.rate) / 1000);
      state.last = t;
      if (state.tokens >= 1) {
        state.tokens -= 1;
        return;
      }
      const waitMs = ((1 - state.tokens) * 1000) / state.rate;
      throw tooMany(`tenant ${tenantId} is over its rate of ${state.rate} requests/s`, waitMs);
    },
    async openStream(tenantId) {
      let state = tenants.get(tenantId);
      if (state === undefined) {
        // admit() runs first and creates the state; this is a safety net.
        state = fresh();
        tenants.set(tenantId, state);
      }
      const s = state;
      const refuse = (open: number | undefined) =>
        tooMany(
          open === undefined
            ? `tenant ${tenantId} has ${s.maxStreams} open streams across the mesh, the most it may have`
            : `tenant ${tenantId} has ${open} open streams, the most it may have`,
          1000,
        );
      let leased: string | undefined;
      if (sharedStreams && (sharedStreams.available?.() ?? true)) {
        const streamId = randomUUID();
        let ok: boolean | undefined;
        try {
          ok = await sharedStreams.open({
            tenantId,
            instance: sharedStreams.instance,
            streamId,
            limit: s.maxStreams,
            ttlMs: leaseMs,
          });
        } catch (err) {
          sharedStreams.onFallback?.(err);
        }
        if (ok === false) throw refuse(undefined);
        if (ok === true) {
          leased = streamId;
          renewing();
        }
      }
      if (leased === undefined && s.streams >= s.maxStreams) throw refuse(s.streams);
      s.streams++;
      let open = true;
      return () => {
        if (!open) return;
        open = false;
        s.streams--;
        if (leased !== undefined && sharedStreams) {
          leases--;
          sharedStreams
            .close(sharedStreams.instance, leased)
            .catch((err: unknown) => sharedStreams.onFallback?.(err)); // it expires anyway
        }
      };
    },
    streams(tenantId) {
      return tenants.get(tenantId)?.streams ?? 0;
    },
    request(tenantId) {
      return tenants.get(tenantId)?.request ?? defaultRequest;
    },
    forget(tenantId) {
      const state = tenants.get(tenantId);
      if (state) {
        state.refreshAt = 0;
        state.stale = true;
      }
    },
    stop() {
      stopped = true;
      if (renewTimer) clearInterval(renewTimer);
      renewTimer = undefined;
    },
  };
}

function tooMany(message: string, retryAfterMs: number): MeshError {
  return exhausted(message, retryAfterMs);
}
