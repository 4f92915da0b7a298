/**
 * `agentmesh agent util` with a side-effect ledger, for the chaos suite: the
 * same command, registry link and SDK, but `util.echo` performs one visible
 * effect per step attempt — it creates `<CHAOS_LEDGER>/<goal>.<step>.<attempt>`
 * exclusively, so a redelivered attempt finds its effect done and skips it
 * (idempotent by attempt id, as the design asks of every handler). Two files
 * for one step mean the step's effect happened twice. Every execution,
 * skipped or not, is appended to `<CHAOS_LEDGER>.log` for the report.
 *
 * Run: `node --import tsx test/chaos/ledger-agent.ts [--concurrency N]`.
 */
import { appendFileSync, closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { builtinAgents } from "../../agents/builtin.js";
import { utilAgent } from "../../agents/util.js";
import { agent } from "../../cli/commands/agent.js";
import { defineAgent } from "../../sdk/agent/define-agent.js";

const ledger = process.env.CHAOS_LEDGER;
if (!ledger) throw new Error("CHAOS_LEDGER is not set");
mkdirSync(ledger, { recursive: true });
const effectMs = Number(process.env.CHAOS_EFFECT_MS ?? 0);

const echo = utilAgent.skills["util.echo"]!;
const ledgerUtil = defineAgent({
  ...utilAgent,
  skills: {
    ...utilAgent.skills,
    "util.echo": {
      ...echo,
      handler: async (input: Record<string, unknown>, ctx) => {
        let skipped = false;
        try {
          closeSync(openSync(join(ledger, `${ctx.goalId}.${ctx.stepId}.${ctx.attemptId}`), "wx"));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
          skipped = true; // this attempt's effect is already done
        }
        appendFileSync(
          `${ledger}.log`,
          `${ctx.goalId} ${ctx.stepId} ${ctx.attemptId} ${ctx.delivery} ${process.pid} ${skipped ? "skip" : "done"}\n`,
        );
        // Hold the result back a little: a kill now finds the effect done and the job unacked.
        await new Promise((r) => setTimeout(r, effectMs));
        return input;
      },
    },
  },
});
builtinAgents.util = () => ledgerUtil;

process.exitCode = await agent.run(["util", ...process.argv.slice(2)]);
