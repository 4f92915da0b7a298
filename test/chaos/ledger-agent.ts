/**
 * A built-in agent (`agentmesh agent <util|text|data>`: the same command,
 * registry link and SDK) whose every skill leaves a side-effect ledger, for
 * the chaos suite's audit. Each handler run appends `start` to
 * `<CHAOS_LEDGER>.log`; a run that completes (and was not aborted) performs
 * its one visible effect — it creates `<CHAOS_LEDGER>/<goal>.<step>.<attempt>`
 * exclusively, holding the agent's pid — as the last thing before it returns,
 * unless it was aborted or its deadline passed (the handler contract, ADR-010).
 * An attempt delivered again (after a clean hand-back) finds its own effect
 * done and skips it. Effects of two attempts of one
 * step are the step's effect twice (what `ctx.idempotencyKey` exists to
 * absorb): the audit (`audit.ts`) forgives that only for an attempt whose
 * process the scenario killed before it could report.
 *
 * Log lines: `<event> <goal> <step> <attempt> <delivery> <pid> <epoch ms>`
 * with event `start`, `effect` or `skip`.
 *
 * Run: `node --import tsx test/chaos/ledger-agent.ts <util|text|data> [agent flags]`.
 */
import { appendFileSync, closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { builtinAgents } from "../../agents/builtin.js";
import { agent } from "../../cli/commands/agent.js";
import {
  type AgentDefinition,
  defineAgent,
  type SkillContext,
  type SkillDefinition,
} from "../../sdk/agent/define-agent.js";

const ledger = process.env.CHAOS_LEDGER;
if (!ledger) throw new Error("CHAOS_LEDGER is not set");
mkdirSync(ledger, { recursive: true });

const [name, ...flags] = process.argv.slice(2);
const make = name ? builtinAgents[name] : undefined;
if (!make) throw new Error(`usage: ledger-agent.ts <${Object.keys(builtinAgents).join("|")}>`);

const note = (event: string, ctx: SkillContext) =>
  appendFileSync(
    `${ledger}.log`,
    `${event} ${ctx.goalId} ${ctx.stepId} ${ctx.attemptId} ${ctx.delivery} ${process.pid} ${Date.now()}\n`,
  );

/** Performs the step's effect once per attempt; false when this attempt's effect was already done. */
function effect(ctx: SkillContext): boolean {
  try {
    const fd = openSync(join(ledger!, `${ctx.goalId}.${ctx.stepId}.${ctx.attemptId}`), "wx");
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    return false;
  }
}

function withLedger(skill: SkillDefinition<never, unknown>): SkillDefinition<never, unknown> {
  return {
    ...skill,
    handler: async (input: never, ctx: SkillContext) => {
      note("start", ctx);
      const output = await skill.handler(input, ctx);
      // As the handler contract asks (ADR-010): no effect once aborted or past the deadline
      // (a process stopped past its deadline resumes before the abort timer fires).
      ctx.signal.throwIfAborted();
      if (Date.now() >= ctx.deadline.getTime()) throw new Error("past the attempt's deadline");
      note(effect(ctx) ? "effect" : "skip", ctx);
      return output;
    },
  };
}

const original: AgentDefinition = make();
const ledgered = defineAgent({
  ...original,
  skills: Object.fromEntries(
    Object.entries(original.skills).map(([capability, skill]) => [capability, withLedger(skill)]),
  ),
});
builtinAgents[name!] = () => ledgered;

process.exitCode = await agent.run([name!, ...flags]);
