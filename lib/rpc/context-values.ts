/**
 * Typed per-call values, as in connect-es: interceptors and handlers share data
 * through keys created once, never through ad-hoc metadata or `any` bags.
 *
 * @example
 * const tenantKey = createContextKey<string | undefined>(undefined, { description: "tenant" });
 * const withTenant: Interceptor = (next) => (call) => {
 *   call.values.set(tenantKey, "acme");
 *   return next(call);
 * };
 * // in a handler: ctx.values.get(tenantKey)
 */

/** A key for one typed value; `defaultValue` is what `get` returns when unset. */
export interface ContextKey<T> {
  readonly id: symbol;
  readonly defaultValue: T;
  readonly description: string;
}

export interface ContextValues {
  get<T>(key: ContextKey<T>): T;
  set<T>(key: ContextKey<T>, value: T): this;
  has(key: ContextKey<unknown>): boolean;
  delete(key: ContextKey<unknown>): this;
}

export function createContextKey<T>(
  defaultValue: T,
  options: { description?: string } = {},
): ContextKey<T> {
  const description = options.description ?? "context value";
  return { id: Symbol(description), defaultValue, description };
}

/** A fresh set of values (one per call). */
export function createContextValues(): ContextValues {
  return new MapContextValues();
}

class MapContextValues implements ContextValues {
  // A plain object keyed by symbols is faster than a Map for the handful of keys a call carries.
  readonly #values: Record<symbol, unknown> = {};

  get<T>(key: ContextKey<T>): T {
    return key.id in this.#values ? (this.#values[key.id] as T) : key.defaultValue;
  }
  set<T>(key: ContextKey<T>, value: T): this {
    this.#values[key.id] = value;
    return this;
  }
  has(key: ContextKey<unknown>): boolean {
    return key.id in this.#values;
  }
  delete(key: ContextKey<unknown>): this {
    delete this.#values[key.id];
    return this;
  }
}
