/**
 * The process's security-event stream: one exporter per process, started
 * from the settings (`AGENTMESH_SIEM_*`) at boot; call sites only call
 * `emitSecurityEvent`, which is a no-op while no sink is configured.
 *
 * @example
 * await startSiemExport(process.env, { logDir });
 * emitSecurityEvent({ kind: "policy.denial", tenantId, identity, resource: method, message: reason });
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Registry } from "prom-client";
import { settings } from "../config/settings.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { meshMetrics } from "../telemetry/metrics.js";
import { createSiemExporter, type SiemExporter } from "./exporter.js";
import { fileSink } from "./file-sink.js";
import { httpSink } from "./http-sink.js";
import type { SecurityEvent } from "./security-event.js";
import type { SiemSink } from "./sink.js";
import { stdoutSink } from "./stdout-sink.js";
import { syslogSink } from "./syslog-sink.js";

let current: SiemExporter | undefined;

/** Sends `event` to the process's SIEM sink, if any. Never throws, never waits. */
export function emitSecurityEvent(event: SecurityEvent): void {
  current?.emit({ ...event, time: event.time ?? Date.now() });
}

/** Installs `exporter` as the process's (tests; `startSiemExport` at boot). Returns the previous one. */
export function setSiemExporter(exporter: SiemExporter | undefined): SiemExporter | undefined {
  const previous = current;
  current = exporter;
  return previous;
}

type Env = Readonly<Record<string, string | undefined>>;

/** The sink the settings name; undefined for `off`. Throws INVALID_ARGUMENT for a bad address. */
export function siemSinkFromSettings(env: Env, defaults: { logDir?: string } = {}) {
  const kind = settings.siemSink.read(env);
  if (kind === "off") return undefined;
  const address = settings.siemAddress.read(env);
  const caFile = settings.siemCaFile.read(env);
  const ca = caFile ? readFileSync(caFile, "utf8") : undefined;
  const need = () => {
    if (!address) {
      throw new MeshError(
        Code.InvalidArgument,
        `AGENTMESH_SIEM_SINK=${kind} needs AGENTMESH_SIEM_ADDRESS`,
      );
    }
    return address;
  };
  let sink: SiemSink;
  switch (kind) {
    case "stdout":
      sink = stdoutSink();
      break;
    case "file":
      sink = fileSink(address ?? join(defaults.logDir ?? need(), "siem.jsonl"));
      break;
    case "syslog": {
      const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(need());
      if (!m) {
        throw new MeshError(
          Code.InvalidArgument,
          `AGENTMESH_SIEM_ADDRESS=${JSON.stringify(address)}: expected host:port for syslog`,
        );
      }
      sink = syslogSink({ host: m[1]!, port: Number(m[2]), ca });
      break;
    }
    case "http": {
      const url = need();
      if (!/^https?:\/\//.test(url)) {
        throw new MeshError(
          Code.InvalidArgument,
          `AGENTMESH_SIEM_ADDRESS=${JSON.stringify(url)}: expected an http(s):// URL`,
        );
      }
      sink = httpSink({ url, ca });
      break;
    }
  }
  return sink;
}

/** Starts the process's exporter from the settings (none for `off`). */
export function startSiemExport(
  env: Env = process.env,
  options: { logDir?: string; registry?: Registry; onError?: (err: unknown) => void } = {},
): SiemExporter | undefined {
  const sink = siemSinkFromSettings(env, options);
  if (!sink) return undefined;
  const exporter = createSiemExporter({
    sink,
    capacity: settings.siemBuffer.read(env),
    registry: options.registry ?? meshMetrics().registry,
    onError: options.onError,
  });
  void current?.close(0);
  current = exporter;
  return exporter;
}

/** Flushes and closes `exporter` (default the process's), unsetting it if it is the process's. */
export async function stopSiemExport(exporter = current, timeoutMs = 2000): Promise<void> {
  if (exporter === current) current = undefined;
  await exporter?.close(timeoutMs);
}
