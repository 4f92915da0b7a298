import { describe, expect, it } from "vitest";
import { Code } from "../errors/mesh-error.js";
import { fromStatus } from "./status.js";

describe("fromStatus", () => {
  it("marks grpc-js's message size limits as not retryable, at either end", () => {
    for (const details of [
      "Received message larger than max (9900725 vs. 4194304)",
      "Sent message larger than max (9900725 vs. 4194304)",
      "Attempted to send message with a size larger than 4194304",
    ]) {
      const err = fromStatus({ code: Code.ResourceExhausted, details });
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/too large for the mesh's internal calls/);
      expect(err.message).toContain(details);
    }
  });

  it("keeps a rate limit retryable", () => {
    const err = fromStatus({
      code: Code.ResourceExhausted,
      details: "tenant acme is over its rate",
    });
    expect(err.retryable).toBe(true);
  });
});
