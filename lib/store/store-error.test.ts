/** Which database failures a caller may retry: the mapping at the store's boundary. */
import { describe, expect, it } from "vitest";
import { Code } from "../errors/mesh-error.js";
import { toStoreError } from "./store-error.js";

describe("toStoreError", () => {
  it("maps a connection that never came up (pg's connect timeout) to UNAVAILABLE, retryable", () => {
    // What pg's Client throws when connectionTimeoutMillis passes (a loaded or restarting server).
    const e = toStoreError(new Error("timeout expired"));
    expect(e.code).toBe(Code.Unavailable);
    expect(e.retryable).toBe(true);
  });

  it("maps refused connections and shutdowns to UNAVAILABLE, a rejected query to its code", () => {
    expect(toStoreError(Object.assign(new Error("x"), { code: "ECONNREFUSED" })).code).toBe(
      Code.Unavailable,
    );
    expect(toStoreError(Object.assign(new Error("x"), { code: "57P01" })).code).toBe(
      Code.Unavailable,
    );
    expect(toStoreError(Object.assign(new Error("dup"), { code: "23505" })).code).toBe(
      Code.AlreadyExists,
    );
    expect(toStoreError(new Error("statement timeout expired in a query")).code).toBe(
      Code.Internal,
    );
  });
});
