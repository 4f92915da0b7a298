/** The shape every console view has: built once per visit, re-rendered on changes. */
import type { Elem } from "./dom.js";
import type { Route } from "./route.js";

export interface Mounted {
  /** Redraws the live parts (tables, charts) from `state`. */
  render(): void;
  /** Stops the view's timers. */
  unmount?(): void;
}

export type ViewFactory = (root: Elem, route: Route) => Mounted;

/** Repeats `f` every `ms` until the returned function is called (a view's refresh). */
export function every(ms: number, f: () => void): () => void {
  f();
  const t = setInterval(f, ms);
  return () => clearInterval(t);
}
