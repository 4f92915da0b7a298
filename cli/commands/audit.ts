import { openStore } from "../../lib/store/store.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh audit verify [--schema S]

Walks the audit log's hash chain and prints the result as JSON. Exits 0 when
the chain is intact, 3 with the first tampered row when it is not.
The database is DATABASE_URL, else the embedded PostgreSQL under $AGENTMESH_HOME/data.`;

/** `agentmesh audit verify`: check the audit log's hash chain. */
export const audit: Command = {
  name: "audit",
  summary: "verify the audit log's hash chain",
  usage,
  async run(args) {
    const [action, ...rest] = args;
    if (action !== "verify") {
      throw new UsageError(action ? `unknown action ${JSON.stringify(action)}` : "missing action");
    }
    let schema: string | undefined;
    if (rest[0] === "--schema" && rest[1] && rest.length === 2) schema = rest[1];
    else if (rest.length > 0)
      throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])}`);
    const store = await openStore({ schema });
    try {
      const result = await store.audit.verify();
      console.log(JSON.stringify(result));
      if (!result.ok) {
        console.error(`audit log tampered: row ${result.seq}: ${result.reason}`);
        return 3;
      }
      return 0;
    } finally {
      await store.close();
    }
  },
};
