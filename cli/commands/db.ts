import { loadConfig } from "../../lib/config/config.js";
import { settings } from "../../lib/config/settings.js";
import { openStore, type Store } from "../../lib/store/store.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh db <migrate|status|down|bootstrap-admin> [options]

  migrate [--grant ROLE]
                   apply pending migrations; --grant gives ROLE (a login role without DDL
                   rights, which the components then use) read and write on every table
  status           list executed and pending migrations (JSON)
  down [--to N]    revert migrations down to (not including) N; all without --to
  bootstrap-admin  create tenant "default" and a platform-admin API key in
                   $AGENTMESH_HOME/admin.key (0600) unless that file holds a working key

The database is DATABASE_URL, else the embedded PostgreSQL under $AGENTMESH_HOME/data.
  --schema S     use schema S instead of public`;

/** `agentmesh db migrate|status|down`: run and inspect the store's migrations. */
export const db: Command = {
  name: "db",
  summary: "apply or inspect database migrations",
  usage,
  async run(args) {
    const [action, ...rest] = args;
    const options = parseOptions(rest);
    if (
      action !== "migrate" &&
      action !== "status" &&
      action !== "down" &&
      action !== "bootstrap-admin"
    ) {
      throw new UsageError(action ? `unknown action ${JSON.stringify(action)}` : "missing action");
    }
    const schema = options.schema ?? settings.dbSchema.read();
    const store = await openStore({ migrate: false, ...(schema ? { schema } : {}) });
    try {
      if (action === "bootstrap-admin") {
        const { ensureBootstrapAdmin } = await import("../../gateway/bootstrap.js");
        const { keyPath, created } = await ensureBootstrapAdmin({ store, home: loadConfig().home });
        // The key itself is never printed: it is read from the file.
        console.log(JSON.stringify({ database: store.location, keyPath, created }));
      } else if (action === "migrate") {
        const applied = await store.migrate();
        if (options.grant) await grantReadWrite(store, schema ?? "public", options.grant);
        console.log(
          JSON.stringify({ database: store.location, applied, granted: options.grant ?? null }),
        );
      } else if (action === "down") {
        const reverted = await store.migrateDown(options.to ?? 0);
        console.log(JSON.stringify({ database: store.location, reverted }));
      } else {
        console.log(
          JSON.stringify({ database: store.location, ...(await store.migrationStatus()) }),
        );
      }
      return 0;
    } finally {
      await store.close();
    }
  },
};

const identifier = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * What the components need and no more: data on every table, sequence and
 * function of the schema, no DDL. Run after each migration (new tables).
 */
async function grantReadWrite(store: Store, schema: string, role: string): Promise<void> {
  if (!identifier.test(role)) throw new UsageError(`invalid role name ${JSON.stringify(role)}`);
  const em = store.orm.em.fork();
  for (const sql of [
    `grant usage on schema "${schema}" to "${role}"`,
    `grant select, insert, update, delete on all tables in schema "${schema}" to "${role}"`,
    `grant usage, select, update on all sequences in schema "${schema}" to "${role}"`,
    `grant execute on all functions in schema "${schema}" to "${role}"`,
  ]) {
    await em.execute(sql);
  }
}

function parseOptions(args: string[]): { schema?: string; to?: string; grant?: string } {
  const options: { schema?: string; to?: string; grant?: string } = {};
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[i + 1];
    if ((flag === "--schema" || flag === "--to" || flag === "--grant") && value) {
      options[flag.slice(2) as "schema" | "to" | "grant"] = value;
      i++;
    } else {
      throw new UsageError(`unexpected argument ${JSON.stringify(flag)}`);
    }
  }
  return options;
}
