import { copyFile, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { loadConfig } from "../../lib/config/config.js";
import { buildPolicy, run } from "../../lib/policy/build.js";
import { parseDecision, readPolicyBundle } from "../../lib/policy/bundle.js";
import { builtinCorpus, checkCorpus } from "../../lib/policy/corpus.js";
import { shadowReport } from "../../lib/policy/shadow-log.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh policy <build|eval|test|shadow|decisions> [options]

  build [--dir policies] [--out bundles/agentmesh.tar.gz]
                                    run the Rego tests (refuses on a failure), compile the
                                    sources and data.json into one OPA bundle with opa (only
                                    builtins in <dir>/capabilities.json), check it against the
                                    reload corpus, and write it atomically
  eval --input file.json [--bundle <AGENTMESH_POLICY>]
                                    decide one input document and print the decision
                                    (exit 0 allowed, 3 denied); '-' reads stdin
  test [--dir policies] [opa test flags ...]
                                    run the Rego tests with coverage (opa test <dir> --coverage
                                    --threshold 95 unless flags are given)
  shadow start <candidate.tar.gz>   run a candidate bundle beside the live one: every process
                                    decides with both and logs each decision that would change
  shadow [report] [--log $AGENTMESH_LOG_DIR/policy-shadow.log] [--json]
                                    every decision the candidate would change, most frequent
                                    first (exit 0 none, 3 some)
  shadow promote                    make the candidate the live bundle (one rename)
  shadow stop                       drop the candidate
  decisions [--decision allowed|denied] [--who TEXT] [--method METHOD]
            [--tenant T | --all-tenants] [--limit 50] [--json]     (AGENTMESH_URL, AGENTMESH_API_KEY)
                                    the gateway's recent decisions on public calls, newest
                                    first, filtered as the console filters them: --who matches
                                    part of tenant/caller, --method a method as
                                    ExecutorService/SubmitGoal or SubmitGoal; --json prints
                                    one decision a line with what the policy read`;

/** `agentmesh policy build|eval|test`: author, compile and debug the mesh policy. */
export const policy: Command = {
  name: "policy",
  summary: "build, test and evaluate the OPA policy (policies/); list its recent decisions",
  usage,
  async run(args) {
    const [sub, ...rest] = args;
    switch (sub) {
      case "build":
        return build(rest);
      case "eval":
        return evaluate(rest);
      case "test":
        return test(rest);
      case "shadow":
        return shadow(rest);
      case "decisions":
        // Through the gateway: loaded only when asked, like the other gateway commands.
        return (await import("./policy-decisions.js")).policyDecisions(rest);
      default:
        throw new UsageError(
          sub ? `unknown sub-command ${JSON.stringify(sub)}` : "missing sub-command",
        );
    }
  },
};

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i === -1) return undefined;
  const value = args[i + 1];
  if (value === undefined || (value.startsWith("--") && value !== "-")) {
    throw new UsageError(`${name} needs a value`);
  }
  args.splice(i, 2);
  return value;
}

async function build(args: string[]): Promise<number> {
  const dir = flag(args, "--dir") ?? "policies";
  const out = flag(args, "--out");
  if (args.length > 0) throw new UsageError(`unexpected arguments: ${args.join(" ")}`);
  try {
    const result = await buildPolicy({ dir, ...(out ? { out } : {}) });
    console.log(
      JSON.stringify({
        bundle: result.bundlePath,
        bytes: result.size,
        revision: result.revision,
        sources: result.sources,
        tests: result.tests,
        corpus: result.corpus,
      }),
    );
    return 0;
  } catch (err) {
    console.error((err as Error).message);
    return 1;
  }
}

async function evaluate(args: string[]): Promise<number> {
  const inputPath = flag(args, "--input");
  const bundlePath = flag(args, "--bundle") ?? flag(args, "--wasm") ?? loadConfig().policyPath;
  const data = flag(args, "--data");
  if (inputPath === undefined) throw new UsageError("--input is required");
  if (args.length > 0) throw new UsageError(`unexpected arguments: ${args.join(" ")}`);
  const text = inputPath === "-" ? await readStdin() : await readFile(inputPath, "utf8");
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${inputPath} is not JSON: ${(err as Error).message}`);
  }
  const bundle = await readPolicyBundle(bundlePath, data);
  const result = bundle.evaluate(input);
  console.log(JSON.stringify({ revision: bundle.revision, result }, null, 2));
  const decision = parseDecision(result);
  return decision?.allow ? 0 : 3;
}

async function test(args: string[]): Promise<number> {
  const dir = flag(args, "--dir") ?? "policies";
  const extra = args.length > 0 ? args : ["--coverage", "--threshold", "95", "--format", "pretty"];
  try {
    const out = await run(process.env.OPA ?? "opa", ["test", dir, ...extra]);
    process.stdout.write(summarizeCoverage(out));
    return 0;
  } catch (err) {
    console.error((err as Error).message);
    return 1;
  }
}

async function shadow(args: string[]): Promise<number> {
  const config = loadConfig();
  const live = config.policyPath;
  const candidate = join(dirname(live), "candidate.tar.gz");
  const named = args[0] !== undefined && !args[0].startsWith("--");
  const sub = named ? args[0]! : "report";
  const rest = named ? args.slice(1) : args;
  switch (sub) {
    case "start": {
      const [source, ...extra] = rest;
      if (source === undefined || extra.length > 0) {
        throw new UsageError("shadow start needs exactly one candidate bundle");
      }
      // Refuse here what every process would refuse on reload.
      const bundle = await readPolicyBundle(source);
      checkCorpus(bundle, builtinCorpus(bundle.data));
      const staged = `${candidate}.${process.pid}.tmp`;
      await copyFile(source, staged);
      await rename(staged, candidate);
      console.log(JSON.stringify({ candidate: bundle.revision, path: candidate }));
      return 0;
    }
    case "promote": {
      const bundle = await readPolicyBundle(candidate);
      await rename(candidate, live);
      console.log(JSON.stringify({ live: bundle.revision, path: live }));
      return 0;
    }
    case "stop":
      await rm(candidate, { force: true });
      return 0;
    case "report": {
      const json = rest.includes("--json");
      const opts = rest.filter((a) => a !== "--json");
      const log = flag(opts, "--log") ?? join(config.logDir, "policy-shadow.log");
      if (opts.length > 0) throw new UsageError(`unexpected arguments: ${opts.join(" ")}`);
      const revision = await readPolicyBundle(candidate).then(
        (b) => b.revision,
        () => undefined,
      );
      const text = await readFile(log, "utf8").catch(() => "");
      const changes = shadowReport(text, revision);
      if (json) {
        console.log(JSON.stringify({ candidate: revision ?? null, changes }, null, 2));
      } else {
        console.log(
          `candidate ${revision ?? "(none installed)"}: ${changes.length} decision(s) would change`,
        );
        for (const c of changes) {
          const verdict = (d: { allow: boolean; reason: string }) =>
            `${d.allow ? "ALLOW" : "DENY"} (${d.reason})`;
          console.log(
            `  ${c.count}× ${c.method} by ${c.caller} on ${JSON.stringify(c.resource)}\n` +
              `     live:      ${verdict(c.live)}\n     candidate: ${verdict(c.candidate)}`,
          );
        }
      }
      return changes.length === 0 ? 0 : 3;
    }
    default:
      throw new UsageError(`unknown shadow sub-command ${JSON.stringify(sub)}`);
  }
}

/** `opa test --coverage` prints the full JSON report; keep it short for people. */
function summarizeCoverage(out: string): string {
  try {
    const report = JSON.parse(out) as { coverage?: number };
    if (typeof report.coverage === "number") {
      return `coverage: ${report.coverage.toFixed(2)}% (threshold 95%)\n`;
    }
  } catch {
    // Not JSON: plain test output.
  }
  return out;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
