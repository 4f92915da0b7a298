/**
 * Selectors by name. The five built-ins are always present; a deployment may
 * add its own factories. Built per `SelectorConfig` and cached, so looking up
 * a selector on the hot path allocates nothing.
 *
 * @example
 * const registry = selectorRegistry(snapshot.config);
 * registry.get("ucb1").choose(ctx, candidates, views, rng);
 */
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import { contextualSelector } from "./contextual-selector.js";
import { epsilonGreedySelector } from "./epsilon-greedy-selector.js";
import { fixedSelector } from "./fixed-selector.js";
import type { Selector, SelectorConfig } from "./selector.js";
import { thompsonSelector } from "./thompson-selector.js";
import { ucb1Selector } from "./ucb1-selector.js";

/** Builds a selector from the configuration of a parameters version. */
export type SelectorFactory = (config: SelectorConfig) => Selector;

export const builtinSelectors: Readonly<Record<string, SelectorFactory>> = Object.freeze({
  thompson: thompsonSelector,
  ucb1: ucb1Selector,
  "epsilon-greedy": epsilonGreedySelector,
  fixed: fixedSelector,
  contextual: contextualSelector,
});

export interface SelectorRegistry {
  /** The selector of that name; NOT_FOUND when there is none. */
  get(name: string): Selector;
  has(name: string): boolean;
  names(): string[];
}

const cache = new WeakMap<SelectorConfig, SelectorRegistry>();

/**
 * The registry for a configuration. Without `extra` factories the result is
 * cached per config object.
 */
export function selectorRegistry(
  config: SelectorConfig,
  extra?: Readonly<Record<string, SelectorFactory>>,
): SelectorRegistry {
  if (!extra) {
    const hit = cache.get(config);
    if (hit) return hit;
  }
  const selectors = new Map<string, Selector>();
  for (const [name, factory] of Object.entries({ ...builtinSelectors, ...extra })) {
    selectors.set(name, factory(config));
  }
  const registry: SelectorRegistry = {
    get(name) {
      const s = selectors.get(name);
      if (!s) {
        throw new MeshError(Code.NotFound, `unknown selector "${name}"`, {
          details: { known: [...selectors.keys()] },
        });
      }
      return s;
    },
    has: (name) => selectors.has(name),
    names: () => [...selectors.keys()],
  };
  if (!extra) cache.set(config, registry);
  return registry;
}
