/**
 * OCSF events as RFC 5424 syslog over TCP with TLS, octet-counting framing
 * (RFC 5425/6587). One connection, opened on first use and again after any
 * error or close. A batch counts as sent once written to the TLS socket:
 * syslog has no application acknowledgement, so events written in the
 * moment between a receiver dying and this side seeing the connection close
 * can be lost; a receiver stopped cleanly closes the connection first and
 * the exporter then keeps the events until it is back.
 */
import { connect, type TLSSocket } from "node:tls";
import type { SiemSink } from "./sink.js";
import { formatRfc5424, frameOctetCounted, syslogSeverity } from "./syslog-frame.js";

export interface SyslogSinkOptions {
  host: string;
  port: number;
  /** PEM CA bundle the receiver's certificate must chain to; default the system roots. */
  ca?: string;
  /** Name checked against the receiver's certificate; default `host`. */
  serverName?: string;
  appName?: string;
  /** Connect timeout; default 5000 ms. */
  timeoutMs?: number;
}

export function syslogSink(options: SyslogSinkOptions): SiemSink {
  let socket: TLSSocket | undefined;

  function open(): Promise<TLSSocket> {
    if (socket && !socket.destroyed && socket.writable) return Promise.resolve(socket);
    return new Promise((resolve, reject) => {
      const s = connect({
        host: options.host,
        port: options.port,
        servername: options.serverName ?? options.host,
        ...(options.ca ? { ca: options.ca } : {}),
        timeout: options.timeoutMs ?? 5000,
      });
      const fail = (err: Error) => {
        s.destroy();
        reject(err);
      };
      s.once("error", fail);
      s.once("timeout", () => fail(new Error("SIEM syslog sink: connect timed out")));
      s.once("secureConnect", () => {
        s.off("error", fail);
        s.setTimeout(0);
        // Later errors and closes only drop the connection; the next send reopens it.
        s.on("error", () => s.destroy());
        s.on("end", () => s.destroy());
        s.on("close", () => {
          if (socket === s) socket = undefined;
        });
        s.on("data", () => {}); // a receiver never talks; drain anyway
        socket = s;
        resolve(s);
      });
    });
  }

  return {
    name: "syslog",
    async send(events) {
      const s = await open();
      const frames = events.map((e) => {
        const meta = (e.metadata ?? {}) as { event_code?: string };
        return frameOctetCounted(
          formatRfc5424({
            severity: syslogSeverity(Number(e.severity_id ?? 0)),
            appName: options.appName ?? "agentmesh",
            msgId: meta.event_code,
            message: JSON.stringify(e),
          }),
        );
      });
      await new Promise<void>((resolve, reject) => {
        if (s.destroyed || !s.writable) {
          reject(new Error("SIEM syslog sink: connection closed"));
          return;
        }
        s.write(Buffer.concat(frames), (err) => (err ? reject(err) : resolve()));
      }).catch((err: unknown) => {
        s.destroy();
        throw err;
      });
    },
    async close() {
      socket?.end();
      socket = undefined;
    },
  };
}
