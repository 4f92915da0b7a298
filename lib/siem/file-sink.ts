/** OCSF events appended to a file as JSON lines (one event a line). */
import { appendFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { SiemSink } from "./sink.js";

export function fileSink(path: string): SiemSink {
  let ready: Promise<unknown> | undefined;
  return {
    name: "file",
    async send(events) {
      ready ??= mkdir(dirname(path), { recursive: true });
      await ready;
      await appendFile(path, events.map((e) => `${JSON.stringify(e)}\n`).join(""), {
        mode: 0o600,
      });
    },
    async close() {},
  };
}
