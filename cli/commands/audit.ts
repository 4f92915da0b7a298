import { loadConfig } from "../../lib/config/config.js";
import { processSecrets } from "../../lib/secrets/open-secrets.js";
import { emitSecurityEvent, startSiemExport, stopSiemExport } from "../../lib/siem/siem.js";
import {
  auditCheckpointSettings,
  checkpointPublicKey,
  verifyAuditLog,
} from "../../lib/store/audit-checkpoint.js";
import { openStore } from "../../lib/store/store.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh audit verify [--schema S] [--checkpoints FILE] [--key FILE]

Walks the audit log's hash chain and checks it against every signed checkpoint
in the checkpoint file (AGENTMESH_AUDIT_CHECKPOINT_FILE, default
$AGENTMESH_HOME/audit-checkpoints.jsonl), verified with the checkpoint key
(AGENTMESH_AUDIT_CHECKPOINT_KEY or its .pub). Prints the result as JSON.
Exits 0 when the chain is intact, 3 naming the first problem when it is not:
a tampered row, a chain truncated before a checkpoint, a chain rewritten
since one, or a checkpoint whose signature does not verify.
The database is DATABASE_URL, else the embedded PostgreSQL under $AGENTMESH_HOME/data.`;

const flags = { "--schema": "schema", "--checkpoints": "filePath", "--key": "keyPath" } as const;

/** `agentmesh audit verify`: check the audit log's hash chain and its checkpoints. */
export const audit: Command = {
  name: "audit",
  summary: "verify the audit log's hash chain against its signed checkpoints",
  usage,
  async run(args) {
    const [action, ...rest] = args;
    if (action !== "verify") {
      throw new UsageError(action ? `unknown action ${JSON.stringify(action)}` : "missing action");
    }
    const given: Partial<Record<(typeof flags)[keyof typeof flags], string>> = {};
    for (let i = 0; i < rest.length; i += 2) {
      const flag = rest[i] as string;
      const value = rest[i + 1];
      if (!(flag in flags) || value === undefined) {
        throw new UsageError(`unexpected argument ${JSON.stringify(flag)}`);
      }
      given[flags[flag as keyof typeof flags]] = value;
    }
    const config = loadConfig();
    const defaults = auditCheckpointSettings(config.home);
    startSiemExport(process.env, { logDir: config.logDir });
    const secrets = await processSecrets();
    const store = await openStore({ schema: given.schema, secrets });
    try {
      const report = await verifyAuditLog(store.audit, {
        filePath: given.filePath ?? defaults.filePath,
        ...(given.keyPath
          ? { keyPath: given.keyPath }
          : { publicKey: () => checkpointPublicKey(secrets) }),
      });
      console.log(JSON.stringify(report));
      if (!report.ok) {
        const detail = "detail" in report && report.detail ? `: ${report.detail}` : "";
        console.error(`audit log tampered: ${report.reason} at row ${report.seq}${detail}`);
        emitSecurityEvent({
          kind: "audit.verify_failed",
          identity: "cli",
          resource: `audit/${report.seq}`,
          message: `audit log tampered: ${report.reason} at row ${report.seq}${detail}`,
          details: { reason: report.reason, seq: report.seq },
        });
        return 3;
      }
      if (report.checkpoint === null) {
        console.error(
          "warning: no audit checkpoints: the chain is intact, but truncation and rewrites cannot be detected",
        );
      }
      return 0;
    } finally {
      await store.close();
      await stopSiemExport();
    }
  },
};
