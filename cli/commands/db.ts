import { loadConfig } from "../../lib/config/config.js";
import { openStore } from "../../lib/store/store.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh db <migrate|status|down|bootstrap-admin> [options]

  migrate          apply pending migrations
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
    const store = await openStore({ migrate: false, schema: options.schema });
    try {
      if (action === "bootstrap-admin") {
        const { ensureBootstrapAdmin } = await import("../../gateway/bootstrap.js");
        const { keyPath, created } = await ensureBootstrapAdmin({ store, home: loadConfig().home });
        // The key itself is never printed: it is read from the file.
        console.log(JSON.stringify({ database: store.location, keyPath, created }));
      } else if (action === "migrate") {
        const applied = await store.migrate();
        console.log(JSON.stringify({ database: store.location, applied }));
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

function parseOptions(args: string[]): { schema?: string; to?: string } {
  const options: { schema?: string; to?: string } = {};
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[i + 1];
    if ((flag === "--schema" || flag === "--to") && value) {
      options[flag === "--schema" ? "schema" : "to"] = value;
      i++;
    } else {
      throw new UsageError(`unexpected argument ${JSON.stringify(flag)}`);
    }
  }
  return options;
}
