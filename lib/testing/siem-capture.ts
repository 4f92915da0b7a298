/**
 * Security events as a SIEM would receive them, for tests: installs the
 * process's SIEM exporter on a file sink in a temporary folder; `events()`
 * flushes it and reads back every OCSF line sent so far.
 *
 * @example
 * const siem = await captureSiemEvents();          // in beforeAll
 * const events = await siem.events<OcsfLine>();    // after the action
 * await siem.close();                              // in afterAll
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSiemExporter, type SiemExporter } from "../siem/exporter.js";
import { fileSink } from "../siem/file-sink.js";
import { setSiemExporter } from "../siem/siem.js";

export interface SiemCapture {
  readonly exporter: SiemExporter;
  /** Flushes the exporter (failing if it cannot) and returns the lines sent, parsed. */
  events<T>(): Promise<T[]>;
  /** Uninstalls the exporter and removes its folder. */
  close(): Promise<void>;
}

export async function captureSiemEvents(): Promise<SiemCapture> {
  const dir = await mkdtemp(join(tmpdir(), "agentmesh-siem-"));
  const file = join(dir, "siem.jsonl");
  const exporter = createSiemExporter({ sink: fileSink(file) });
  setSiemExporter(exporter);
  return {
    exporter,
    async events<T>() {
      if (!(await exporter.flush(5000))) throw new Error("the SIEM exporter did not flush in 5 s");
      const text = await readFile(file, "utf8").catch(() => "");
      return text
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l) as T);
    },
    async close() {
      setSiemExporter(undefined);
      await exporter.close(1000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
