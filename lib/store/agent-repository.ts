/**
 * The agent registry's state (platform level, not tenant data): agents keyed
 * by (card name, instance id), one `agent_skills` row per capability so
 * "live agents offering X" is an index lookup, and tools.
 *
 * @example
 * const { agent } = await store.agents.upsert({ name: "text-agent", instanceId, card, spiffeId,
 *   capabilities: ["text.summarize"], leaseExpiresAt: new Date(Date.now() + 15_000) });
 * const live = await store.agents.findLive("text.summarize");
 * const expired = await store.agents.expireLeases(); // the sweeper, safe on every replica
 */
import { randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, MeshError } from "../errors/mesh-error.js";
import {
  type Db,
  decodeToken,
  encodeToken,
  json,
  pageSize,
  pgArray,
  type Row,
  requireText,
} from "./db.js";
import { AgentEntity, ToolEntity } from "./entities.js";
import type { AgentRecord, AgentStateName, ToolRecord } from "./records.js";

export interface AgentRegistration {
  name: string;
  instanceId: string;
  version?: string;
  /** The card as JSON. */
  card: JsonObject;
  spiffeId: string;
  /** Capabilities of the card's skills. */
  capabilities: string[];
  leaseExpiresAt: Date;
  /** Default LIVE. */
  state?: AgentStateName;
}

export interface ListAgentsOptions {
  capability?: string;
  /** Only agents in these states. */
  states?: AgentStateName[];
  /** Only agents whose lease has not expired. */
  liveOnly?: boolean;
  pageSize?: number;
  pageToken?: string;
}

const agentStates: AgentStateName[] = ["LIVE", "DRAINING", "EXPIRED", "DEREGISTERED", "PROBATION"];

export class AgentRepository {
  /** @internal */
  constructor(private readonly db: Db) {}

  /**
   * Registers or re-registers an agent instance: the id and `registeredAt` of
   * an existing (name, instanceId) are kept, everything else is replaced.
   * PERMISSION_DENIED when that instance is live under another SPIFFE ID: an
   * identity may take over only an expired or deregistered instance.
   */
  async upsert(input: AgentRegistration): Promise<{ agent: AgentRecord; created: boolean }> {
    requireText(input.name, "agent name", 128);
    requireText(input.instanceId, "instance id", 128);
    requireText(input.spiffeId, "SPIFFE ID", 512);
    const state = input.state ?? "LIVE";
    checkState(state);
    const capabilities = [...new Set(input.capabilities)];
    for (const c of capabilities) requireText(c, "capability", 128);
    return this.db.transaction(async (db) => {
      const [row] = await db.rows(
        `insert into agents (id, name, instance_id, version, card, spiffe_id, state, capabilities, lease_expires_at)
         values (?, ?, ?, ?, ?::jsonb, ?, ?, ?::text[], ?)
         on conflict (name, instance_id) do update set
           version = excluded.version, card = excluded.card, spiffe_id = excluded.spiffe_id,
           state = excluded.state, capabilities = excluded.capabilities,
           lease_expires_at = excluded.lease_expires_at, last_heartbeat_at = now(), updated_at = now()
         where agents.spiffe_id = excluded.spiffe_id or agents.state in ('EXPIRED', 'DEREGISTERED')
         returning *, (xmax = 0) as inserted`,
        [
          randomUUID(),
          input.name,
          input.instanceId,
          input.version ?? "",
          json(input.card),
          input.spiffeId,
          state,
          pgArray(capabilities),
          input.leaseExpiresAt,
        ],
      );
      // No row: the instance is live under another identity, which must not take it over.
      if (!row) {
        throw new MeshError(
          Code.PermissionDenied,
          `agent ${input.name} instance ${input.instanceId} is registered by another identity; use another instance id or wait until its lease expires`,
        );
      }
      const { inserted, ...agentRow } = row as Row & { inserted: boolean };
      const agent = await db.run(
        async (em) => ({ ...em.map(AgentEntity, agentRow) }) as AgentRecord,
      );
      await db.rows("delete from agent_skills where agent_id = ?", [agent.id]);
      if (capabilities.length > 0) {
        await db.rows(
          "insert into agent_skills (agent_id, capability) select ?, unnest(?::text[])",
          [agent.id, pgArray(capabilities)],
        );
      }
      return { agent, created: inserted };
    });
  }

  /**
   * Whether an agent of this name and version with exactly this card has passed its
   * conformance examples before (ADR-015): another instance of it need not again.
   */
  async conformancePassed(name: string, version: string, card: JsonObject): Promise<boolean> {
    const rows = await this.db.rows(
      `select 1 from agents where name = ? and version = ? and card = ?::jsonb
         and conformance_passed_at is not null limit 1`,
      [name, version, json(card)],
    );
    return rows.length > 0;
  }

  /** An agent in probation that passed its conformance examples, now LIVE; undefined when it is not in probation. */
  async passConformance(agentId: string): Promise<AgentRecord | undefined> {
    const [row] = await this.db.mapped<AgentRecord>(
      AgentEntity,
      `update agents set state = 'LIVE', conformance_passed_at = now(), updated_at = now()
       where id = ? and state = 'PROBATION' returning *`,
      [agentId],
    );
    return row;
  }

  /** Renews a lease and records load; NOT_FOUND if the agent is unknown. */
  async heartbeat(
    agentId: string,
    update: { leaseExpiresAt: Date; inFlight?: number; state?: AgentStateName },
  ): Promise<AgentRecord> {
    if (update.state) checkState(update.state);
    const [row] = await this.db.mapped<AgentRecord>(
      AgentEntity,
      `update agents set lease_expires_at = ?, in_flight = coalesce(?, in_flight),
         state = coalesce(?, state), last_heartbeat_at = now(), updated_at = now()
       where id = ? returning *`,
      [update.leaseExpiresAt, update.inFlight ?? null, update.state ?? null, agentId],
    );
    if (!row) throw new MeshError(Code.NotFound, `agent ${agentId} not found`);
    return row;
  }

  /** Sets an agent's state (DRAINING, DEREGISTERED, ...); NOT_FOUND if unknown. */
  async setState(agentId: string, state: AgentStateName): Promise<AgentRecord> {
    checkState(state);
    const [row] = await this.db.mapped<AgentRecord>(
      AgentEntity,
      "update agents set state = ?, updated_at = now() where id = ? returning *",
      [state, agentId],
    );
    if (!row) throw new MeshError(Code.NotFound, `agent ${agentId} not found`);
    return row;
  }

  /** The agent, or undefined. */
  async find(agentId: string): Promise<AgentRecord | undefined> {
    const [row] = await this.db.mapped<AgentRecord>(
      AgentEntity,
      "select * from agents where id = ?",
      [agentId],
    );
    return row;
  }

  /** The agent, or NOT_FOUND. */
  async get(agentId: string): Promise<AgentRecord> {
    const row = await this.find(agentId);
    if (!row) throw new MeshError(Code.NotFound, `agent ${agentId} not found`);
    return row;
  }

  /** One page of agents by id. */
  async list(
    options: ListAgentsOptions = {},
  ): Promise<{ agents: AgentRecord[]; nextPageToken: string }> {
    const size = pageSize(options.pageSize);
    const where = ["a.id > ?"];
    const params: unknown[] = [
      options.pageToken ? String(decodeToken(options.pageToken, 1)[0]) : "",
    ];
    if (options.capability) {
      where.push(
        "exists (select 1 from agent_skills s where s.agent_id = a.id and s.capability = ?)",
      );
      params.push(options.capability);
    }
    if (options.states?.length) {
      for (const s of options.states) checkState(s);
      where.push("a.state = any(?::text[])");
      params.push(pgArray(options.states));
    }
    if (options.liveOnly) where.push("a.state = 'LIVE' and a.lease_expires_at > now()");
    params.push(size + 1);
    const rows = await this.db.mapped<AgentRecord>(
      AgentEntity,
      `select a.* from agents a where ${where.join(" and ")} order by a.id limit ?`,
      params,
    );
    const agents = rows.slice(0, size);
    const last = agents[agents.length - 1];
    return { agents, nextPageToken: rows.length > size && last ? encodeToken([last.id]) : "" };
  }

  /** Live agents (state LIVE, lease not expired) per capability they offer, for the fleet gauge. */
  async countLive(): Promise<Map<string, number>> {
    const rows = await this.db.rows<{ capability: string; agents: string | number }>(
      // Capabilities whose agents all went away count 0, so a fleet gone to nothing shows.
      `select s.capability,
              count(*) filter (where a.state = 'LIVE' and a.lease_expires_at > now()) as agents
       from agent_skills s join agents a on a.id = s.agent_id
       group by s.capability`,
      [],
    );
    return new Map(rows.map((r) => [r.capability, Number(r.agents)]));
  }

  /**
   * Live agents (state LIVE, lease not expired) offering a capability, most
   * reliable first (unknown reliability counts as 0.5), then least loaded.
   */
  async findLive(capability: string, options: { limit?: number } = {}): Promise<AgentRecord[]> {
    requireText(capability, "capability", 128);
    return this.db.mapped<AgentRecord>(
      AgentEntity,
      `select a.* from agent_skills s join agents a on a.id = s.agent_id
       where s.capability = ? and a.state = 'LIVE' and a.lease_expires_at > now()
       order by coalesce((a.reliability ->> ?)::float8, 0.5) desc, a.in_flight, a.id
       limit ?`,
      [capability, capability, options.limit ?? 100],
    );
  }

  /**
   * Marks LIVE and DRAINING agents whose lease ran out as EXPIRED and returns
   * them. Rows are claimed with SKIP LOCKED, so sweepers on several replicas
   * never report the same agent twice.
   */
  async expireLeases(options: { limit?: number } = {}): Promise<AgentRecord[]> {
    return this.db.mapped<AgentRecord>(
      AgentEntity,
      `update agents set state = 'EXPIRED', updated_at = now()
       where id in (
         select id from agents where state in ('LIVE','DRAINING','PROBATION') and lease_expires_at <= now()
         order by lease_expires_at limit ? for update skip locked)
       returning *`,
      [options.limit ?? 100],
    );
  }

  /** Sets the reliability score the agent shows for one capability. */
  async setReliability(agentId: string, capability: string, score: number): Promise<void> {
    if (!(score >= 0 && score <= 1)) {
      throw new MeshError(Code.InvalidArgument, "reliability must be within [0, 1]");
    }
    await this.db.rows(
      `update agents set reliability = jsonb_set(reliability, array[?], to_jsonb(?::float8))
       where id = ?`,
      [capability, score, agentId],
    );
  }

  /** Registers or replaces a tool by name. */
  async putTool(input: {
    name: string;
    agentId?: string | null;
    spec: JsonObject;
  }): Promise<ToolRecord> {
    requireText(input.name, "tool name", 256);
    const [row] = await this.db.mapped<ToolRecord>(
      ToolEntity,
      `insert into tools (name, agent_id, spec) values (?, ?, ?::jsonb)
       on conflict (name) do update set agent_id = excluded.agent_id, spec = excluded.spec, updated_at = now()
       returning *`,
      [input.name, input.agentId ?? null, json(input.spec)],
    );
    return row as ToolRecord;
  }

  /** Tools by name, optionally only one agent's. */
  async listTools(options: { agentId?: string } = {}): Promise<ToolRecord[]> {
    return options.agentId
      ? this.db.mapped<ToolRecord>(
          ToolEntity,
          "select * from tools where agent_id = ? order by name",
          [options.agentId],
        )
      : this.db.mapped<ToolRecord>(ToolEntity, "select * from tools order by name");
  }

  /**
   * The tools that carry a capability's metadata: those named like a
   * capability their own agent offers, and those an operator registered
   * (no agent). An agent cannot set the scope or limit of a capability it
   * does not offer by naming a tool after it.
   */
  async capabilityTools(): Promise<ToolRecord[]> {
    return this.db.mapped<ToolRecord>(
      ToolEntity,
      `select t.* from tools t
        where t.agent_id is null
           or exists (select 1 from agent_skills s where s.agent_id = t.agent_id and s.capability = t.name)
        order by t.name`,
    );
  }
}

function checkState(state: string): void {
  if (!agentStates.includes(state as AgentStateName)) {
    throw new MeshError(Code.InvalidArgument, `invalid agent state ${JSON.stringify(state)}`);
  }
}
