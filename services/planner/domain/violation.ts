/**
 * A problem found in a playbook, located by a path in the playbook's file
 * spelling (`strategies[0].steps[2].depends_on[0]`), so one error format
 * serves YAML files and playbooks sent through the API alike.
 */
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";

/** Path segments: keys and array indexes. */
export type FieldPath = ReadonlyArray<string | number>;

export interface Violation {
  path: FieldPath;
  message: string;
}

/** `["strategies", 0, "steps"]` → `strategies[0].steps`. */
export function formatPath(path: FieldPath): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else out += out === "" ? segment : `.${segment}`;
  }
  return out;
}

/**
 * One INVALID_ARGUMENT error listing every violation; `details.violations`
 * holds `{ path, message, line? }` for tools and UIs.
 */
export function violationsError(
  what: string,
  violations: ReadonlyArray<Violation & { line?: number }>,
  extra: Record<string, unknown> = {},
): MeshError {
  const lines = violations.map(
    (v) => `${formatPath(v.path) || "(root)"}${v.line ? ` (line ${v.line})` : ""}: ${v.message}`,
  );
  return new MeshError(Code.InvalidArgument, `${what}:\n  ${lines.join("\n  ")}`, {
    retryable: false,
    details: {
      ...extra,
      violations: violations.map((v) => ({
        path: formatPath(v.path),
        message: v.message,
        ...(v.line ? { line: v.line } : {}),
      })),
    },
  });
}
