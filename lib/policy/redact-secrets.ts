/**
 * Secret-looking fields of a value replaced by "[REDACTED]", at any depth:
 * the one rule for the decision log, the shadow log and what the console
 * shows of goal and step inputs and outputs. Browser-safe.
 *
 * @example
 * redactSecrets({ url: "u", headers: { Authorization: "Bearer x" } });
 * // { url: "u", headers: { Authorization: "[REDACTED]" } }
 */

/** Keys whose values are never shown or logged (as in lib/log). */
const secretKey =
  /^(password|secret|token|api_?key|authorization|private_?key|key|cookie|credentials?)$/i;

/** A copy of `value` with secret-looking fields replaced by "[REDACTED]". */
export function redactSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map(redactSecrets) as T;
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = secretKey.test(k) ? "[REDACTED]" : redactSecrets(v);
  }
  return out as T;
}
