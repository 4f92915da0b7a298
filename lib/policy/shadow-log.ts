/**
 * The shadow log: one JSON line per decision a shadow candidate bundle would
 * answer differently from the live one (`PolicyEngine`'s `onShadow`), and
 * the report `agentmesh policy shadow` prints from it: every distinct change
 * (method, caller, resource, live answer → candidate answer) with how often
 * it was seen, so a security team sees what a rollout would change before the
 * swap.
 *
 * @example
 * const shadow = createShadowLog({ destination: "logs/policy-shadow.log", labels: { instance } });
 * const engine = await openPolicyEngine({ onShadow: shadow.record });
 * const report = shadowReport(await readFile("logs/policy-shadow.log", "utf8"));
 */
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { pino } from "pino";
import type { EngineDecision, ShadowDifference } from "./engine.js";
import type { PolicyInput } from "./input.js";
import { redactSecrets } from "./redact-secrets.js";

/** One line of the shadow log. */
export interface ShadowEntry {
  decision_id: string;
  timestamp: string;
  input: PolicyInput;
  live: ShadowResult;
  candidate: ShadowResult;
  labels: Record<string, string>;
}

export interface ShadowResult {
  allow: boolean;
  reason: string;
  principal_trusted: boolean;
  revision: string;
  error?: string;
}

export interface ShadowLog {
  /** Writes one difference (bound: pass it as `onShadow`). */
  record(difference: ShadowDifference): void;
  close(): Promise<void>;
}

export function createShadowLog(options: {
  destination: string;
  labels?: Record<string, string>;
}): ShadowLog {
  // Opened on the first difference: without a candidate nothing touches the disk.
  let stream: ReturnType<typeof pino.destination> | undefined;
  const labels = options.labels ?? {};
  return {
    record({ input, live, candidate }) {
      if (stream === undefined) {
        mkdirSync(dirname(options.destination), { recursive: true });
        stream = pino.destination({ dest: options.destination, append: true, sync: false });
      }
      const entry: ShadowEntry = {
        decision_id: randomUUID(),
        timestamp: new Date(input.time.unix_ms).toISOString(),
        input: redactSecrets(input),
        live: result(live),
        candidate: result(candidate),
        labels,
      };
      stream.write(`${JSON.stringify(entry)}\n`);
    },
    async close() {
      const s = stream;
      if (s === undefined) return;
      await new Promise<void>((resolve) => {
        s.once("close", () => resolve());
        s.end();
      });
    },
  };
}

function result(d: EngineDecision): ShadowResult {
  const r: ShadowResult = {
    allow: d.allow,
    reason: d.reason,
    principal_trusted: d.principalTrusted,
    revision: d.revision ?? "",
  };
  if (d.error !== undefined) r.error = d.error;
  return r;
}

/** One distinct change a candidate would make, with how often it was seen. */
export interface ShadowChange {
  method: string;
  caller: string;
  resource: PolicyInput["resource"];
  live: { allow: boolean; reason: string };
  candidate: { allow: boolean; reason: string };
  count: number;
  candidateRevision: string;
  lastSeen: string;
}

/** Groups shadow-log lines into distinct changes, most frequent first. */
export function shadowReport(text: string, candidate?: string): ShadowChange[] {
  const changes = new Map<string, ShadowChange>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let e: ShadowEntry;
    try {
      e = JSON.parse(line) as ShadowEntry;
    } catch {
      continue;
    }
    if (!e.input?.method || !e.live || !e.candidate) continue;
    if (candidate !== undefined && e.candidate.revision !== candidate) continue;
    const p = e.input.principal;
    const caller = `${e.input.peer?.name ?? "(no peer)"}${p ? ` for ${p.tenant_id}/${p.subject} (${p.roles.join(", ")})` : ""}`;
    const live = { allow: e.live.allow, reason: e.live.reason };
    const cand = { allow: e.candidate.allow, reason: e.candidate.reason };
    const key = JSON.stringify([e.input.method.full, caller, e.input.resource, live, cand]);
    const seen = changes.get(key);
    if (seen) {
      seen.count++;
      if (e.timestamp > seen.lastSeen) seen.lastSeen = e.timestamp;
    } else {
      changes.set(key, {
        method: e.input.method.full,
        caller,
        resource: e.input.resource,
        live,
        candidate: cand,
        count: 1,
        candidateRevision: e.candidate.revision,
        lastSeen: e.timestamp,
      });
    }
  }
  return [...changes.values()].sort((a, b) => b.count - a.count);
}
