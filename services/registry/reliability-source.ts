/**
 * Agent reliability for discovery ordering: the learning service's scores
 * (GetAgentReliability) cached briefly per capability, falling back to the
 * scores mirrored into the agents table when learning is not configured,
 * slow or failing. A failure is cached too, so a learning outage costs one
 * short timeout per capability per TTL, not one per FindAgents call.
 *
 * @example
 * const reliability = createReliabilitySource({ learning, ttlMs: 5000 });
 * const scores = await reliability.scores("text.summarize"); // Map agentId → score, or undefined
 */
import type { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import type { Logger } from "../../lib/log/logger.js";
import type { Client } from "../../lib/rpc/index.js";

export interface ReliabilitySourceOptions {
  /** Learning client; without it `scores` always resolves undefined (use stored scores). */
  learning?: Client<typeof LearningService> | undefined;
  /** How long scores (or a failure) are reused; default 5000 ms. */
  ttlMs?: number;
  /** Deadline of one GetAgentReliability call; default 300 ms. */
  timeoutMs?: number;
  log?: Logger;
  /** Default `Date.now`. */
  clock?: () => number;
}

export interface ReliabilitySource {
  /** Scores by agent id for a capability, or undefined when learning cannot say. */
  scores(capability: string): Promise<ReadonlyMap<string, number> | undefined>;
}

export function createReliabilitySource(options: ReliabilitySourceOptions): ReliabilitySource {
  const ttl = options.ttlMs ?? 5000;
  const timeoutMs = options.timeoutMs ?? 300;
  const clock = options.clock ?? Date.now;
  const cache = new Map<
    string,
    { at: number; value: Promise<ReadonlyMap<string, number> | undefined> }
  >();
  return {
    scores(capability) {
      const learning = options.learning;
      if (!learning) return Promise.resolve(undefined);
      const now = clock();
      const hit = cache.get(capability);
      if (hit && now - hit.at < ttl) return hit.value;
      const value = learning.getAgentReliability({ capability }, { timeoutMs }).then(
        (res) => new Map(res.scores.map((s) => [s.agentId, s.score])),
        (err: unknown) => {
          options.log?.debug({ err, capability }, "learning reliability unavailable; using stored");
          return undefined;
        },
      );
      cache.set(capability, { at: now, value });
      if (cache.size > 10_000) cache.delete(cache.keys().next().value as string);
      return value;
    },
  };
}
