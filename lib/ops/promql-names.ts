/**
 * The metric and label names a PromQL expression refers to, found roughly (no
 * full parser): selectors `name{label="..."}`, grouping and matching clauses
 * `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`,
 * and bare identifiers that are not functions or keywords. Enough to check
 * that dashboards and rules name only series the processes export.
 *
 * @example
 * promqlNames('sum by (kind) (rate(x_total{tenant="a"}[5m]))');
 * // { metrics: Map { "x_total" => Set { "tenant" } }, clauseLabels: Set { "kind" } }
 */
export interface PromqlNames {
  /** Each metric with the labels its selectors name. */
  metrics: Map<string, Set<string>>;
  /** Labels of grouping and vector-matching clauses. */
  clauseLabels: Set<string>;
}

const keywords = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "offset",
  "bool",
  "inf",
  "nan",
]);

export function promqlNames(expr: string): PromqlNames {
  const metrics = new Map<string, Set<string>>();
  const clauseLabels = new Set<string>();
  const add = (metric: string) => {
    let labels = metrics.get(metric);
    if (!labels) {
      labels = new Set();
      metrics.set(metric, labels);
    }
    return labels;
  };
  let rest = expr.replace(
    /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\}/g,
    (_, metric: string, selector: string) => {
      const labels = add(metric);
      for (const m of selector.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"/g)) {
        labels.add(m[1]!);
      }
      return " ";
    },
  );
  rest = rest.replace(
    /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
    (_, _kw: string, list: string) => {
      for (const l of list.split(",")) if (l.trim()) clauseLabels.add(l.trim());
      return " ";
    },
  );
  rest = rest.replace(/"(?:[^"\\]|\\.)*"/g, " ").replace(/\[[^\]]*\]/g, " ");
  for (const m of rest.matchAll(/(?<![0-9.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (call || keywords.has(name!.toLowerCase())) continue;
    add(name!);
  }
  return { metrics, clauseLabels };
}
