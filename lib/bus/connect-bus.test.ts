/**
 * What a component is told when the NATS it was configured with is not
 * there: the error names the server and why (here: nothing listens).
 */
import { describe, expect, it } from "vitest";
import { Code, isMeshError } from "../errors/mesh-error.js";
import { freePort } from "../testing/free-port.js";
import { connectBus } from "./connect-bus.js";

describe("connectBus", () => {
  it("fails UNAVAILABLE naming the server and the cause when a configured NATS does not answer", async () => {
    const natsUrl = `nats://127.0.0.1:${await freePort()}`;
    const err = await connectBus({ natsUrl, explicit: true }).catch((e: unknown) => e);
    expect(isMeshError(err) && err.code).toBe(Code.Unavailable);
    expect((err as Error).message).toMatch(
      new RegExp(`^job bus: NATS at ${natsUrl} did not answer: NATS is not reachable: .+`),
    );
  });
});
