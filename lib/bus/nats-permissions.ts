/**
 * Who may do what on the bus, per SPIFFE identity, as NATS subject
 * permissions — derived from the same grants the policy decides with
 * (`policies/data.json`: `agent_capabilities`, `agent_capability_prefixes`,
 * `mesh_identities`), so the bus and the RPC spine never disagree.
 *
 * - An agent publishes results only on `<prefix>.results.<its name>.>`, pulls
 *   and acks only the job consumers of capabilities it is granted, creates a
 *   consumer only with a granted filter, and dead-letters and hands back only its jobs.
 * - The executor publishes jobs, events, outcomes and cancellations, consumes
 *   results, provisions the streams and moves exhausted messages to the DLQ;
 *   it never pulls a job.
 * - Learning consumes outcomes and training jobs and publishes training jobs.
 * - Anyone else (registry, planner, gateway, cli) may only ask JetStream's
 *   account info; the gateway also reads queue statistics.
 * - Every client uses its own inbox prefix `_INBOX.<name>` and may subscribe
 *   only there, so nobody reads another client's replies or job deliveries.
 *
 * Job consumers are named per capability (`jobs_text_summarize`), a single
 * subject token, and NATS wildcards match whole tokens only: a wildcard grant
 * (`text.*`) is therefore expanded against the capabilities the mesh knows
 * (`knownCapabilities`); subject-shaped permissions (job filters, dead-letter
 * subjects) keep the wildcard.
 *
 * @example
 * const grants = busGrantsFromPolicyData(JSON.parse(readFileSync("policies/data.json", "utf8")));
 * natsPermissions({ identity: "agent-text", grants, prefix: "agentmesh", knownCapabilities: ["text.summarize"] });
 * // { publish: ["$JS.API.INFO", "agentmesh.results.agent-text.>", ...], subscribe: ["_INBOX.agent-text.>", ...] }
 */
import { Code, MeshError } from "../errors/mesh-error.js";
import { busNames, jobConsumerName, pinnedConsumerName } from "./bus-names.js";

/** The grants of `policies/data.json` that the bus enforces. */
export interface BusGrants {
  /** Mesh components: registry, planner, executor, learning, gateway, cli. */
  meshIdentities: string[];
  /** Agent identity → capability patterns (`text.*`, `http.fetch`, `*`). */
  agentCapabilities: Record<string, string[]>;
  /** Identity prefix → pattern templates with `{suffix}` (`agent-mcp-` → `mcp.{suffix}.*`). */
  agentCapabilityPrefixes: Record<string, string[]>;
}

/** What a bus client does, which decides its permissions and what its bus provisions. */
export type BusRole = "executor" | "learning" | "agent" | "gateway" | "other";

export interface SubjectPermissions {
  publish: string[];
  subscribe: string[];
}

/** Reads the bus grants from the policy data document (`policies/data.json`). */
export function busGrantsFromPolicyData(data: unknown): BusGrants {
  const cfg = (data as { agentmesh?: { config?: Record<string, unknown> } })?.agentmesh?.config;
  if (!cfg) {
    throw new MeshError(Code.InvalidArgument, "policy data has no agentmesh.config object");
  }
  return {
    meshIdentities: (cfg.mesh_identities as string[] | undefined) ?? [],
    agentCapabilities: (cfg.agent_capabilities as Record<string, string[]> | undefined) ?? {},
    agentCapabilityPrefixes:
      (cfg.agent_capability_prefixes as Record<string, string[]> | undefined) ?? {},
  };
}

/** The inbox prefix of an identity's connections; only it may subscribe there. */
export function inboxPrefixOf(identity: string): string {
  return `_INBOX.${checkIdentityToken(identity)}`;
}

/** The capability patterns granted to `identity`, by name or by prefix (as the policy reads them). */
export function capabilityGrantsOf(grants: BusGrants, identity: string): string[] {
  const out = [...(grants.agentCapabilities[identity] ?? [])];
  for (const [prefix, templates] of Object.entries(grants.agentCapabilityPrefixes)) {
    if (!identity.startsWith(prefix) || identity === prefix) continue;
    const suffix = identity.slice(prefix.length);
    for (const t of templates) out.push(t.replaceAll("{suffix}", suffix));
  }
  return out;
}

export function busRoleOf(grants: BusGrants, identity: string): BusRole {
  if (identity === "executor" || identity === "learning" || identity === "gateway") return identity;
  return capabilityGrantsOf(grants, identity).length > 0 ? "agent" : "other";
}

/**
 * What an identity's bus does on a NATS with these permissions: the executor
 * and learning provision the streams, only the executor moves exhausted
 * messages to the dead-letter stream.
 */
export function busDutiesOf(identity: string): { provision: boolean; deadLetterMover: boolean } {
  return {
    provision: identity === "executor" || identity === "learning",
    deadLetterMover: identity === "executor",
  };
}

/** The policy's pattern semantics: `*` any, `x.*` anything under `x.`, else exact. */
export function capabilityMatches(pattern: string, capability: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith("*")) return capability.startsWith(pattern.slice(0, -1));
  return pattern === capability;
}

/** A capability pattern as a NATS subject pattern (`*` → `>`, `text.*` → `text.>`). */
export function capabilitySubjectPattern(pattern: string): string {
  const subject =
    pattern === "*" ? ">" : pattern.endsWith(".*") ? `${pattern.slice(0, -1)}>` : pattern;
  if (!/^([A-Za-z0-9_-]+\.)*([A-Za-z0-9_-]+|>)$/.test(subject)) {
    throw new MeshError(
      Code.InvalidArgument,
      `capability grant ${JSON.stringify(pattern)} cannot be a NATS subject permission: use "*", "<words>.*" or an exact capability`,
    );
  }
  return subject;
}

export interface NatsPermissionsInput {
  /** The service-account name of the SPIFFE ID (`agent-text`, `executor`). */
  identity: string;
  grants: BusGrants;
  /** Bus prefix (`agentmesh`). */
  prefix: string;
  /** Capabilities a wildcard grant is expanded to for consumer names. */
  knownCapabilities: readonly string[];
  /**
   * Agent versions whose own job queues (steps with a version range, ADR-015) their
   * agents may consume, as `<capability>@<version>`; granted like the capability.
   */
  agentVersions?: readonly string[];
}

const api = "$JS.API";

/** The subject permissions of one identity; see the module comment. */
export function natsPermissions(input: NatsPermissionsInput): SubjectPermissions {
  const { identity, grants, prefix } = input;
  const n = busNames(prefix);
  const s = n.streams;
  const inbox = `${inboxPrefixOf(identity)}.>`;
  const publish = [`${api}.INFO`];
  const subscribe = [inbox];
  const streamAdmin = Object.values(s).flatMap((name) => [
    `${api}.STREAM.CREATE.${name}`,
    `${api}.STREAM.UPDATE.${name}`,
    `${api}.STREAM.INFO.${name}`,
  ]);
  /** Pull, ack and (re)create one durable consumer with its filter. */
  const consumer = (stream: string, durable: string, filter: string) => [
    `${api}.CONSUMER.CREATE.${stream}.${durable}.${filter}`,
    `${api}.CONSUMER.INFO.${stream}.${durable}`,
    `${api}.CONSUMER.MSG.NEXT.${stream}.${durable}`,
    `$JS.ACK.${stream}.${durable}.>`,
  ];
  /** Ordered (ephemeral) consumers reading a stream, e.g. to replay goal events. */
  const reader = (stream: string) => [
    `${api}.CONSUMER.CREATE.${stream}.>`,
    `${api}.CONSUMER.INFO.${stream}.*`,
    `${api}.CONSUMER.MSG.NEXT.${stream}.*`,
    `${api}.CONSUMER.DELETE.${stream}.*`,
  ];
  switch (busRoleOf(grants, identity)) {
    case "executor":
      publish.push(
        ...streamAdmin,
        // Jobs: publish any capability, provision its consumer, read its depth; never pull one.
        `${prefix}.jobs.>`,
        `${api}.CONSUMER.CREATE.${s.jobs}.*.${prefix}.jobs.>`,
        `${api}.CONSUMER.INFO.${s.jobs}.*`,
        `${api}.CONSUMER.LIST.${s.jobs}`,
        ...consumer(s.results, "results", n.resultsWildcard),
        `${prefix}.events.>`,
        ...reader(s.events),
        // A tenant's erasure takes its goals' events off the stream.
        `${api}.STREAM.PURGE.${s.events}`,
        n.outcomesSubject,
        `${prefix}.control.cancel.*`,
        // Dead letters: move exhausted messages, list them.
        n.dlqWildcard,
        ...[s.jobs, s.results, s.learning].flatMap((name) => [
          `${api}.STREAM.MSG.GET.${name}`,
          `${api}.STREAM.MSG.DELETE.${name}`,
        ]),
        ...reader(s.dlq),
      );
      subscribe.push(
        ...[s.jobs, s.results, s.learning].map(
          (name) => `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${name}.*`,
        ),
      );
      break;
    case "learning":
      publish.push(
        ...streamAdmin,
        n.trainingSubject,
        ...consumer(s.learning, "outcomes", n.outcomesSubject),
        ...consumer(s.learning, "training", n.trainingSubject),
      );
      break;
    case "gateway":
      publish.push(`${api}.CONSUMER.LIST.${s.jobs}`);
      break;
    case "agent": {
      const patterns = capabilityGrantsOf(grants, identity);
      const subjects = patterns.map(capabilitySubjectPattern);
      publish.push(
        `${prefix}.results.${identity}.>`,
        ...subjects.map((p) => `${prefix}.dlq.${p}`),
        // Hand-backs of its jobs, and reading them back on a redelivery (ADR-010).
        ...subjects.map((p) => `${prefix}.handbacks.*.${p}`),
        `${api}.STREAM.MSG.GET.${s.handBacks}`,
        ...input.knownCapabilities
          .filter((c) => patterns.some((p) => capabilityMatches(p, c)))
          .flatMap((c) => consumer(s.jobs, jobConsumerName(c), n.jobSubject(c))),
        ...(input.agentVersions ?? [])
          .map(parseAgentVersion)
          .filter(({ capability }) => patterns.some((p) => capabilityMatches(p, capability)))
          .flatMap(({ capability, version }) =>
            consumer(
              s.jobs,
              pinnedConsumerName(capability, version),
              n.pinnedJobSubject(capability, version),
            ),
          ),
      );
      subscribe.push(n.cancelWildcard);
      break;
    }
    case "other":
      break;
  }
  return { publish: [...new Set(publish)], subscribe: [...new Set(subscribe)] };
}

/** `text.summarize@2.1.0` as its capability and version; INVALID_ARGUMENT otherwise. */
export function parseAgentVersion(entry: string): { capability: string; version: string } {
  const at = entry.lastIndexOf("@");
  if (at <= 0 || at === entry.length - 1) {
    throw new MeshError(
      Code.InvalidArgument,
      `agent version ${JSON.stringify(entry)}: expected <capability>@<version>, e.g. text.summarize@2.1.0`,
    );
  }
  return { capability: entry.slice(0, at), version: entry.slice(at + 1) };
}

/** Every identity the bus knows: mesh components, named agents and `extraAgents` (e.g. `agent-mcp-github`). */
export function busIdentities(grants: BusGrants, extraAgents: readonly string[] = []): string[] {
  return [
    ...new Set([
      ...grants.meshIdentities,
      ...Object.keys(grants.agentCapabilities),
      ...extraAgents,
    ]),
  ];
}

function checkIdentityToken(identity: string): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(identity)) {
    throw new MeshError(
      Code.InvalidArgument,
      `invalid identity name ${JSON.stringify(identity)}: expected a SPIFFE service-account name`,
    );
  }
  return identity;
}
