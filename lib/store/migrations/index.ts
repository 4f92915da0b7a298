/**
 * Every migration, in order. Listed explicitly (MikroORM `migrationsList`)
 * instead of found by a file glob, so they run the same from the TypeScript
 * sources (tsx, vitest) and from the compiled JavaScript in `dist/`. Each is
 * imported only when the migrator runs: they extend `@mikro-orm/migrations`,
 * whose loading is a noticeable share of start-up for a store that has
 * nothing to migrate.
 *
 * To add one: write `NNNN-what-it-does.ts` exporting a `Migration` subclass
 * with `up()` and `down()`, and append it here. Never edit a released one.
 */
import type { MigrationObject } from "@mikro-orm/core";

const all: { name: string; load: () => Promise<MigrationObject["class"]> }[] = [
  {
    name: "0001-initial-schema",
    load: async () => (await import("./0001-initial-schema.js")).InitialSchema,
  },
  { name: "0002-audit-head", load: async () => (await import("./0002-audit-head.js")).AuditHead },
  {
    name: "0003-require-function",
    load: async () => (await import("./0003-require-function.js")).RequireFunction,
  },
  {
    name: "0004-goal-submitter",
    load: async () => (await import("./0004-goal-submitter.js")).GoalSubmitter,
  },
  {
    name: "0005-tenant-operations",
    load: async () => (await import("./0005-tenant-operations.js")).TenantOperations,
  },
  {
    name: "0006-tenant-data-keys",
    load: async () => (await import("./0006-tenant-data-keys.js")).TenantDataKeys,
  },
  {
    name: "0007-unlogged-rate-buckets",
    load: async () => (await import("./0007-unlogged-rate-buckets.js")).UnloggedRateBuckets,
  },
  {
    name: "0008-tenant-retention",
    load: async () => (await import("./0008-tenant-retention.js")).TenantRetention,
  },
  {
    name: "0009-experience-signatures",
    load: async () => (await import("./0009-experience-signatures.js")).ExperienceSignatures,
  },
  {
    name: "0010-stream-leases",
    load: async () => (await import("./0010-stream-leases.js")).StreamLeases,
  },
  {
    name: "0011-goal-submitter-roles",
    load: async () => (await import("./0011-goal-submitter-roles.js")).GoalSubmitterRoles,
  },
  {
    name: "0012-strategy-recent-stats",
    load: async () => (await import("./0012-strategy-recent-stats.js")).StrategyRecentStats,
  },
  {
    name: "0013-playbook-notify",
    load: async () => (await import("./0013-playbook-notify.js")).PlaybookNotify,
  },
  {
    name: "0014-agent-probation",
    load: async () => (await import("./0014-agent-probation.js")).AgentProbation,
  },
  {
    name: "0015-due-steps-index",
    load: async () => (await import("./0015-due-steps-index.js")).DueStepsIndex,
  },
  {
    name: "0016-goal-index-entries",
    load: async () => (await import("./0016-goal-index-entries.js")).GoalIndexEntries,
  },
];

/** The names of every migration, in order. */
export const migrationNames: readonly string[] = all.map((m) => m.name);

/** Every migration with its class, for MikroORM's migrator. */
export function loadMigrations(): Promise<MigrationObject[]> {
  return Promise.all(all.map(async (m) => ({ name: m.name, class: await m.load() })));
}
