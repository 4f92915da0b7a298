/**
 * What an incoming call hands on to the calls its handler makes: deadline,
 * cancellation and trace. The server runs each handler inside a scope
 * (AsyncLocalStorage), and the client reads it, so a handler that calls
 * another service propagates all three without passing anything by hand.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { SpanContext } from "@opentelemetry/api";

export interface CallScope {
  /** Absolute deadline (ms since epoch) of the incoming call. */
  deadline: number | undefined;
  /** Aborts when the incoming call is cancelled. */
  signal: AbortSignal;
  /** The server span of the incoming call. */
  spanContext: SpanContext | undefined;
}

const storage = new AsyncLocalStorage<CallScope>();

/** The scope of the incoming call this code runs for, if any. */
export function currentScope(): CallScope | undefined {
  return storage.getStore();
}

/** Runs `fn` inside `scope`. */
export function runInScope<T>(scope: CallScope, fn: () => T): T {
  return storage.run(scope, fn);
}
