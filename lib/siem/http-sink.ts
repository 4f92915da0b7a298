/**
 * OCSF events POSTed as one JSON array per batch; the batch counts as
 * delivered only on a 2xx answer (so HTTP gives a real acknowledgement,
 * unlike syslog over TCP). `https:` URLs verify the server against `ca`
 * when given, else the system roots.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { SiemSink } from "./sink.js";

export interface HttpSinkOptions {
  url: string;
  /** PEM CA bundle for an `https:` URL. */
  ca?: string;
  /** Per request; default 5000 ms. */
  timeoutMs?: number;
}

export function httpSink(options: HttpSinkOptions): SiemSink {
  const url = new URL(options.url);
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return {
    name: "http",
    send(events) {
      const body = Buffer.from(JSON.stringify(events));
      return new Promise<void>((resolve, reject) => {
        const req = request(
          url,
          {
            method: "POST",
            headers: { "content-type": "application/json", "content-length": body.length },
            timeout: options.timeoutMs ?? 5000,
            ...(options.ca ? { ca: options.ca } : {}),
          },
          (res) => {
            res.resume();
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) res.on("end", () => resolve());
            else reject(new Error(`SIEM HTTP sink: ${url.origin} answered ${status}`));
          },
        );
        req.on("timeout", () => req.destroy(new Error("SIEM HTTP sink: timed out")));
        req.on("error", reject);
        req.end(body);
      });
    },
    async close() {},
  };
}
