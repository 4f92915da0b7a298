import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()));
      cb();
    },
  });
  return { lines, stream };
}

describe("createLogger", () => {
  it("redacts secrets wherever they are nested", async () => {
    const { lines, stream } = capture();
    const log = createLogger({ name: "t", level: "info", destination: stream });
    log.info(
      {
        password: "p1",
        req: { headers: { authorization: "Bearer abc" } },
        key: { secret: "s3" },
        user: { apiKey: "k" },
      },
      "hello",
    );
    await new Promise((r) => setImmediate(r));
    const text = JSON.stringify(lines[0]);
    expect(text).not.toContain("p1");
    expect(text).not.toContain("Bearer abc");
    expect(text).not.toContain("s3");
    expect(text).not.toContain('"k"');
    expect(lines[0]?.msg).toBe("hello");
    expect(lines[0]?.name).toBe("t");
  });
});
