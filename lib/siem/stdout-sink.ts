/** OCSF events as JSON lines on stdout (for a log collector that tails the container). */
import type { SiemSink } from "./sink.js";

export function stdoutSink(out: NodeJS.WritableStream = process.stdout): SiemSink {
  return {
    name: "stdout",
    send(events) {
      const text = events.map((e) => `${JSON.stringify(e)}\n`).join("");
      return new Promise((resolve, reject) =>
        out.write(text, (err) => (err ? reject(err) : resolve())),
      );
    },
    async close() {},
  };
}
