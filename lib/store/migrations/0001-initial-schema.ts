/**
 * The initial schema: tenants and keys, goals with their events, plans,
 * steps and attempts, the agent registry, playbooks, learning state, feature
 * flags and the append-only audit log.
 *
 * Tables are created unqualified: the store sets `search_path` to its schema,
 * so the same migration builds `public` in production and a private schema
 * per test file.
 */
import { Migration } from "@mikro-orm/migrations";

const goalStatus = `'PENDING','PLANNING','RUNNING','SUCCEEDED','FAILED','CANCELLED'`;
const stepStatus = `'PENDING','DISPATCHED','RUNNING','SUCCEEDED','FAILED','CANCELLED','RETRY_WAIT'`;

const up = [
  `create table tenants (
    id text primary key check (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    display_name text not null,
    rate_limit_per_second double precision not null default 0 check (rate_limit_per_second >= 0),
    max_concurrent_streams int not null default 0 check (max_concurrent_streams >= 0),
    limits jsonb not null default '{}',
    created_at timestamptz(3) not null default now(),
    updated_at timestamptz(3) not null default now())`,

  `create table api_keys (
    key_id text primary key,
    tenant_id text not null references tenants (id) on delete cascade,
    name text not null,
    roles text[] not null default '{}',
    secret_hash text not null,
    created_at timestamptz(3) not null default now(),
    expires_at timestamptz(3),
    revoked_at timestamptz(3))`,
  "create index api_keys_tenant on api_keys (tenant_id)",

  `create table goals (
    id text primary key,
    tenant_id text not null references tenants (id),
    kind text not null,
    input jsonb not null default '{}',
    idempotency_key text,
    priority int not null default 0,
    deadline timestamptz(3),
    status text not null check (status in (${goalStatus})),
    output jsonb,
    error jsonb,
    plan_id text,
    strategy text,
    requested_strategy text,
    parent_goal_id text references goals (id),
    parent_step_id text,
    labels jsonb not null default '{}',
    trace_id text,
    created_at timestamptz(3) not null default now(),
    updated_at timestamptz(3) not null default now(),
    finished_at timestamptz(3),
    version int not null default 1,
    lease_owner text,
    lease_expires_at timestamptz(3),
    last_event_seq bigint not null default 0,
    -- NULL keys are distinct, so goals without a key never collide.
    constraint goals_idempotency unique (tenant_id, idempotency_key))`,
  "create index goals_tenant_created on goals (tenant_id, created_at desc, id desc)",
  "create index goals_parent on goals (parent_goal_id) where parent_goal_id is not null",
  `create index goals_claimable on goals (status, priority desc, created_at)
    where status in ('PENDING','PLANNING','RUNNING')`,

  `create table goal_events (
    goal_id text not null references goals (id) on delete cascade,
    sequence bigint not null check (sequence > 0),
    tenant_id text not null,
    type text not null,
    data jsonb not null,
    created_at timestamptz(3) not null default now(),
    primary key (goal_id, sequence))`,

  `create table plans (
    id text primary key,
    tenant_id text not null references tenants (id),
    goal_id text not null references goals (id) on delete cascade,
    goal_kind text not null,
    strategy text not null,
    output_step text not null,
    parameters_version text,
    rationale text not null default '',
    collaborative boolean not null default false,
    spec jsonb not null,
    created_at timestamptz(3) not null default now())`,
  "create index plans_goal on plans (goal_id, created_at desc)",

  `create table steps (
    plan_id text not null references plans (id) on delete cascade,
    step_id text not null,
    tenant_id text not null,
    goal_id text not null,
    position int not null default 0,
    capability text,
    status text not null check (status in (${stepStatus})),
    attempts int not null default 0,
    depends_on text[] not null default '{}',
    spec jsonb not null,
    output jsonb,
    error jsonb,
    agent_ids text[] not null default '{}',
    child_goal_id text,
    next_attempt_at timestamptz(3),
    lease_owner text,
    lease_expires_at timestamptz(3),
    started_at timestamptz(3),
    finished_at timestamptz(3),
    updated_at timestamptz(3) not null default now(),
    version int not null default 1,
    primary key (plan_id, step_id))`,
  "create index steps_goal on steps (goal_id)",
  "create index steps_due on steps (next_attempt_at) where status = 'RETRY_WAIT'",
  "create index steps_child on steps (child_goal_id) where child_goal_id is not null",

  `create table step_attempts (
    attempt_id text primary key,
    tenant_id text not null,
    goal_id text not null,
    plan_id text not null,
    step_id text not null,
    attempt int not null check (attempt > 0),
    replica int not null default 0,
    agent_id text,
    outcome text not null check (outcome in
      ('DISPATCHED','RUNNING','SUCCEEDED','FAILED','TIMED_OUT','CANCELLED')),
    output jsonb,
    error jsonb,
    cost double precision,
    dispatched_at timestamptz(3) not null default now(),
    started_at timestamptz(3),
    finished_at timestamptz(3),
    foreign key (plan_id, step_id) references steps (plan_id, step_id) on delete cascade)`,
  "create index step_attempts_step on step_attempts (plan_id, step_id, attempt)",

  `create table agents (
    id text primary key,
    name text not null,
    instance_id text not null,
    version text not null default '',
    card jsonb not null,
    spiffe_id text not null,
    state text not null check (state in ('LIVE','DRAINING','EXPIRED','DEREGISTERED')),
    capabilities text[] not null default '{}',
    registered_at timestamptz(3) not null default now(),
    lease_expires_at timestamptz(3) not null,
    last_heartbeat_at timestamptz(3) not null default now(),
    in_flight int not null default 0,
    reliability jsonb not null default '{}',
    updated_at timestamptz(3) not null default now(),
    constraint agents_instance unique (name, instance_id))`,
  "create index agents_leases on agents (lease_expires_at) where state in ('LIVE','DRAINING')",

  // One row per (agent, capability) so "live agents offering X" is an index lookup.
  `create table agent_skills (
    agent_id text not null references agents (id) on delete cascade,
    capability text not null,
    primary key (agent_id, capability))`,
  "create index agent_skills_capability on agent_skills (capability, agent_id)",

  `create table tools (
    name text primary key,
    agent_id text references agents (id) on delete set null,
    spec jsonb not null,
    updated_at timestamptz(3) not null default now())`,

  `create table playbooks (
    tenant_id text not null references tenants (id) on delete cascade,
    goal_kind text not null,
    playbook jsonb not null,
    version int not null default 1,
    created_at timestamptz(3) not null default now(),
    updated_at timestamptz(3) not null default now(),
    primary key (tenant_id, goal_kind))`,

  `create table experiences (
    goal_id text primary key,
    tenant_id text not null references tenants (id),
    goal_kind text not null,
    bucket text not null,
    strategy text not null,
    parameters_version text,
    success boolean not null,
    latency_ms double precision not null,
    cost double precision not null default 0,
    features real[] not null default '{}',
    outcome jsonb not null,
    created_at timestamptz(3) not null default now())`,
  "create index experiences_tenant_kind on experiences (tenant_id, goal_kind, created_at desc)",
  "create index experiences_created on experiences (created_at)",

  `create table strategy_stats (
    bucket text not null,
    strategy text not null,
    tenant_id text,
    goal_kind text,
    successes double precision not null default 0,
    failures double precision not null default 0,
    pulls bigint not null default 0,
    outcomes bigint not null default 0,
    latency_sum_ms double precision not null default 0,
    cost_sum double precision not null default 0,
    updated_at timestamptz(3) not null default now(),
    primary key (bucket, strategy))`,
  "create index strategy_stats_scope on strategy_stats (tenant_id, goal_kind)",

  `create table parameter_versions (
    version text primary key,
    state text not null check (state in ('CURRENT','CANARY','RETIRED','ROLLED_BACK')),
    params jsonb not null,
    traffic_fraction double precision not null default 0
      check (traffic_fraction >= 0 and traffic_fraction <= 1),
    successes double precision not null default 0,
    failures double precision not null default 0,
    run_id text not null default '',
    note text not null default '',
    created_at timestamptz(3) not null default now(),
    updated_at timestamptz(3) not null default now(),
    revision int not null default 1)`,
  // At most one current and one canary version at any time.
  "create unique index parameter_versions_one_current on parameter_versions (state) where state in ('CURRENT','CANARY')",

  `create table agent_reliability (
    agent_id text not null,
    capability text not null,
    score double precision not null check (score >= 0 and score <= 1),
    observations double precision not null default 0,
    updated_at timestamptz(3) not null default now(),
    primary key (agent_id, capability))`,
  "create index agent_reliability_capability on agent_reliability (capability)",

  `create table feature_flags (
    key text not null,
    tenant_id text not null default '',
    goal_kind text not null default '',
    value jsonb not null,
    updated_at timestamptz(3) not null default now(),
    primary key (key, tenant_id, goal_kind))`,

  `create table audit_events (
    seq bigint primary key check (seq > 0),
    time timestamptz(3) not null,
    tenant_id text,
    actor text not null,
    action text not null,
    resource text not null,
    details jsonb not null default '{}',
    prev_hash text not null check (length(prev_hash) = 64),
    hash text not null check (length(hash) = 64))`,
  "create index audit_events_tenant on audit_events (tenant_id, seq) where tenant_id is not null",
  // Append-only at the database level: no role that connects as the table's user can rewrite history.
  `create function audit_events_append_only() returns trigger language plpgsql as $fn$
    begin
      raise exception 'audit_events is append-only: % is not allowed', tg_op
        using errcode = 'insufficient_privilege';
    end
  $fn$`,
  `create trigger audit_events_no_update before update or delete on audit_events
    for each row execute function audit_events_append_only()`,
  `create trigger audit_events_no_truncate before truncate on audit_events
    for each statement execute function audit_events_append_only()`,
];

const tables = [
  "audit_events",
  "feature_flags",
  "agent_reliability",
  "parameter_versions",
  "strategy_stats",
  "experiences",
  "playbooks",
  "tools",
  "agent_skills",
  "agents",
  "step_attempts",
  "steps",
  "plans",
  "goal_events",
  "goals",
  "api_keys",
  "tenants",
];

export class InitialSchema extends Migration {
  override up(): void {
    for (const sql of up) this.addSql(sql);
  }

  override down(): void {
    for (const table of tables) this.addSql(`drop table if exists ${table} cascade`);
    this.addSql("drop function if exists audit_events_append_only()");
  }
}
