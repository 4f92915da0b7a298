/**
 * FindAgents answers kept for planning. Planning asks the registry about the
 * same few capabilities for every goal; at tens of goals a second that was the
 * registry's whole load, so an answer that found agents is reused for `ttlMs`
 * (an agent that left within that time may still be planned with, as when it
 * leaves just after planning: its step's attempt times out and is retried).
 *
 * An answer in the second half of its life is still used, and one lookup is
 * sent meanwhile to replace it: under steady load no plan waits for the
 * registry (at 200 goals/s every expiry held up the goals arriving during the
 * round trip), and no answer older than `ttlMs` is ever used. A burst of
 * goals missing the cache together shares the one lookup in flight instead of
 * each sending its own (sixty at once overran the registry's deadline on a
 * busy host and failed goals as UNAVAILABLE).
 *
 * @example
 * const agents = agentsCache((capability, limit) => registry.findAgents(...), { ttlMs: 1000 });
 * const live = await agents.find("util.echo", 1);
 */
export interface AgentsCacheOptions {
  /** How long an answer that found agents is reused; 0: never. */
  ttlMs: number;
  clock: () => number;
  /** A refresh in the background failed (the entry expires as it would have). */
  onRefreshError?(err: unknown): void;
}

export interface AgentsCache<A> {
  find(capability: string, limit: number): Promise<A[]>;
}

export function agentsCache<A>(
  lookup: (capability: string, limit: number) => Promise<A[]>,
  options: AgentsCacheOptions,
): AgentsCache<A> {
  const { ttlMs, clock } = options;
  const kept = new Map<string, { fetchedAt: number; agents: A[] }>();
  const inFlight = new Map<string, Promise<A[]>>();

  const fetch = (key: string, capability: string, limit: number): Promise<A[]> => {
    const running = inFlight.get(key);
    if (running) return running;
    const sentAt = clock();
    const p = lookup(capability, limit)
      .then((agents) => {
        // An empty answer is never reused: an agent that just registered is found at once.
        if (agents.length > 0 && ttlMs > 0) {
          if (kept.size >= 10_000) kept.clear(); // bounded: capabilities are few
          kept.set(key, { fetchedAt: sentAt, agents });
        } else kept.delete(key);
        return agents;
      })
      .finally(() => inFlight.delete(key));
    inFlight.set(key, p);
    return p;
  };

  return {
    find(capability, limit) {
      const key = `${capability} ${limit}`;
      const hit = kept.get(key);
      const age = hit ? clock() - hit.fetchedAt : Infinity;
      if (hit && age < ttlMs) {
        if (age >= ttlMs / 2 && !inFlight.has(key)) {
          fetch(key, capability, limit).catch((err: unknown) => options.onRefreshError?.(err));
        }
        return Promise.resolve(hit.agents);
      }
      return fetch(key, capability, limit);
    },
  };
}
