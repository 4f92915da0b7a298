import type { Command } from "../command.js";

/**
 * Every sub-command, in the order `agentmesh help` lists them, loaded lazily:
 * a command imports only its own dependencies, so `agentmesh goal ls` does not
 * pay for the store, the policy engine or the agents.
 */
export const commands: Record<string, () => Promise<Command>> = {
  dev: async () => (await import("./dev.js")).dev,
  serve: async () => (await import("./serve.js")).serve,
  agent: async () => (await import("./agent.js")).agent,
  goal: async () => (await import("./goal.js")).goal,
  playbook: async () => (await import("./playbook.js")).playbook,
  agents: async () => (await import("./agents.js")).agents,
  tenants: async () => (await import("./tenants.js")).tenants,
  keys: async () => (await import("./keys.js")).keys,
  learning: async () => (await import("./learning.js")).learning,
  certs: async () => (await import("./certs.js")).certs,
  policy: async () => (await import("./policy.js")).policy,
  nats: async () => (await import("./nats.js")).nats,
  db: async () => (await import("./db.js")).db,
  config: async () => (await import("./config.js")).config,
  audit: async () => (await import("./audit.js")).audit,
  dlq: async () => (await import("./dlq.js")).dlq,
  ops: async () => (await import("./ops.js")).ops,
  catalog: async () => (await import("./catalog.js")).catalog,
  cards: async () => (await import("./cards.js")).cards,
  bench: async () => (await import("./bench.js")).bench,
};
