/**
 * RFC 5424 syslog messages with RFC 6587 octet-counting framing
 * (`<length> <message>`), the framing that survives newlines in the payload.
 * Security events go out as facility 13 (log audit) with a severity from the
 * OCSF severity; the message body is the OCSF JSON.
 *
 * @example
 * socket.write(frameOctetCounted(formatRfc5424({ severity: 4, appName: "agentmesh", msgId: "auth.failure", message: json })));
 */
import { hostname } from "node:os";

export interface Rfc5424Message {
  /** 0-7 (4 warning, 5 notice, 6 informational). */
  severity: number;
  /** Default 13, log audit. */
  facility?: number;
  /** Default now. */
  time?: Date;
  hostName?: string;
  appName: string;
  procId?: string;
  msgId?: string;
  message: string;
}

/** PRINTUSASCII without spaces, at most `max` characters, or `-`. */
function field(value: string | undefined, max: number): string {
  const v = (value ?? "").replace(/[^\x21-\x7e]/g, "_").slice(0, max);
  return v === "" ? "-" : v;
}

/** `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG` (no structured data). */
export function formatRfc5424(m: Rfc5424Message): string {
  const pri = (m.facility ?? 13) * 8 + Math.min(Math.max(m.severity, 0), 7);
  const time = (m.time ?? new Date()).toISOString();
  return `<${pri}>1 ${time} ${field(m.hostName ?? hostname(), 255)} ${field(m.appName, 48)} ${field(
    m.procId ?? String(process.pid),
    128,
  )} ${field(m.msgId, 32)} - ${m.message}`;
}

/** RFC 6587 §3.4.1: the message's length in octets, a space, the message. */
export function frameOctetCounted(message: string): Buffer {
  const body = Buffer.from(message, "utf8");
  return Buffer.concat([Buffer.from(`${body.length} `, "ascii"), body]);
}

/** Syslog severity for an OCSF severity_id (4 High → 3 error ... 1 Informational → 6). */
export function syslogSeverity(ocsfSeverityId: number): number {
  return [6, 6, 5, 4, 3, 2, 1][ocsfSeverityId] ?? 5;
}
