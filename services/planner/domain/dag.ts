/**
 * Graph facts about a plan's steps: cycles, a topological order, and each
 * step's transitive dependencies (which step outputs its templates may read).
 * Works on any `{ id, dependsOn }` nodes so the executor and tests can reuse it.
 *
 * @example
 * findCycle([{ id: "a", dependsOn: ["b"] }, { id: "b", dependsOn: ["a"] }]); // ["a", "b", "a"]
 */

/** A node of a dependency graph. */
export interface DagNode {
  readonly id: string;
  readonly dependsOn: readonly string[];
}

/**
 * A cycle as the list of ids along it, first id repeated at the end
 * (`["a", "b", "a"]` means a depends on b depends on a), or undefined.
 * Unknown dependencies are ignored (reported separately by validation).
 */
export function findCycle(nodes: readonly DagNode[]): string[] | undefined {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  // Iterative DFS so a long chain cannot overflow the call stack.
  for (const root of nodes) {
    if (state.has(root.id)) continue;
    const frames: Array<{ id: string; next: number }> = [{ id: root.id, next: 0 }];
    state.set(root.id, "visiting");
    stack.push(root.id);
    while (frames.length > 0) {
      const frame = frames[frames.length - 1]!;
      const deps = byId.get(frame.id)?.dependsOn ?? [];
      if (frame.next >= deps.length) {
        state.set(frame.id, "done");
        stack.pop();
        frames.pop();
        continue;
      }
      const dep = deps[frame.next++]!;
      if (!byId.has(dep)) continue;
      const s = state.get(dep);
      if (s === "visiting") return [...stack.slice(stack.indexOf(dep)), dep];
      if (s === undefined) {
        state.set(dep, "visiting");
        stack.push(dep);
        frames.push({ id: dep, next: 0 });
      }
    }
  }
  return undefined;
}

/** Ids in an order where every node comes after its dependencies (stable: ties keep input order). Assumes no cycle. */
export function topologicalOrder(nodes: readonly DagNode[]): string[] {
  const known = new Set(nodes.map((n) => n.id));
  const remaining = new Map(
    nodes.map((n) => [n.id, new Set(n.dependsOn.filter((d) => known.has(d)))]),
  );
  const order: string[] = [];
  while (remaining.size > 0) {
    const ready = [...remaining].filter(([, deps]) => deps.size === 0).map(([id]) => id);
    if (ready.length === 0) throw new Error("topologicalOrder: graph has a cycle");
    for (const id of ready) {
      order.push(id);
      remaining.delete(id);
    }
    for (const deps of remaining.values()) for (const id of ready) deps.delete(id);
  }
  return order;
}

/** For each node, every node it depends on directly or transitively. Assumes no cycle. */
export function transitiveDependencies(nodes: readonly DagNode[]): Map<string, Set<string>> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const result = new Map<string, Set<string>>();
  for (const id of topologicalOrder(nodes)) {
    const all = new Set<string>();
    for (const dep of byId.get(id)?.dependsOn ?? []) {
      if (!byId.has(dep)) continue;
      all.add(dep);
      for (const d of result.get(dep) ?? []) all.add(d);
    }
    result.set(id, all);
  }
  return result;
}
