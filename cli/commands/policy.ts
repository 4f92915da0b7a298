import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { loadConfig } from "../../lib/config/config.js";
import { buildPolicy, run } from "../../lib/policy/build.js";
import { parseDecision, readPolicyBundle } from "../../lib/policy/bundle.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh policy <build|eval|test> [options]

  build [--dir policies]            compile the Rego sources to <dir>/policy.wasm with opa
                                    (only builtins in <dir>/capabilities.json are allowed)
  eval --input file.json [--wasm policies/policy.wasm] [--data <beside wasm>/data.json]
                                    decide one input document and print the decision
                                    (exit 0 allowed, 3 denied); '-' reads stdin
  test [--dir policies] [opa test flags ...]
                                    run the Rego tests with coverage (opa test <dir> --coverage
                                    --threshold 95 unless flags are given)`;

/** `agentmesh policy build|eval|test`: author, compile and debug the mesh policy. */
export const policy: Command = {
  name: "policy",
  summary: "build, test and evaluate the OPA policy (policies/)",
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
  if (args.length > 0) throw new UsageError(`unexpected arguments: ${args.join(" ")}`);
  const result = await buildPolicy({ dir });
  // Prove the module loads and decides before anyone commits it.
  const bundle = await readPolicyBundle(result.wasmPath, join(resolve(dir), "data.json"));
  console.log(
    JSON.stringify({
      wasm: result.wasmPath,
      bytes: result.size,
      sources: result.sources,
      revision: bundle.revision,
    }),
  );
  return 0;
}

async function evaluate(args: string[]): Promise<number> {
  const inputPath = flag(args, "--input");
  const wasm = flag(args, "--wasm") ?? loadConfig().policyPath;
  const data = flag(args, "--data") ?? join(resolve(wasm, ".."), "data.json");
  if (inputPath === undefined) throw new UsageError("--input is required");
  if (args.length > 0) throw new UsageError(`unexpected arguments: ${args.join(" ")}`);
  const text = inputPath === "-" ? await readStdin() : await readFile(inputPath, "utf8");
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${inputPath} is not JSON: ${(err as Error).message}`);
  }
  const bundle = await readPolicyBundle(wasm, data);
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
