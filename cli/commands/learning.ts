/**
 * `agentmesh learning train`: asks the learning service for a training run
 * now, over mTLS as the `cli` identity (the policy grants it every method).
 *
 * @example
 * agentmesh learning train --reason "after the import"   # prints {"runId":"..."}
 */
import { join } from "node:path";
import { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import { loadConfig } from "../../lib/config/config.js";
import { spiffeId } from "../../lib/identity/spiffe.js";
import { createChannel, createClient } from "../../lib/rpc/index.js";
import { watchCertificates } from "../../lib/tls/index.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh learning <train> [options]

  train [--reason text] [--address host:port] [--timeout ms]
        start a training run now (LearningService.TriggerTraining) and print its run id.
        Connects as the "cli" identity with the certificates under AGENTMESH_CERT_DIR/cli;
        the address defaults to AGENTMESH_HOST:AGENTMESH_LEARNING_PORT (127.0.0.1:7104).`;

/** `agentmesh learning train`. */
export const learning: Command = {
  name: "learning",
  summary: "operate the learning service (train now)",
  usage,
  async run(args) {
    const [sub, ...rest] = args;
    if (sub !== "train") {
      throw new UsageError(
        sub ? `unknown sub-command ${JSON.stringify(sub)}` : "missing sub-command",
      );
    }
    return train(rest);
  },
};

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i === -1) return undefined;
  const value = args[i + 1];
  if (value === undefined || value.startsWith("--")) throw new UsageError(`${name} needs a value`);
  args.splice(i, 2);
  return value;
}

async function train(args: string[]): Promise<number> {
  const reason = flag(args, "--reason") ?? "manual (agentmesh learning train)";
  const config = loadConfig();
  const address = flag(args, "--address") ?? `${config.host}:${config.ports.learning}`;
  const timeoutMs = Number(flag(args, "--timeout") ?? 10_000);
  if (!(timeoutMs > 0)) throw new UsageError("--timeout must be a positive number of ms");
  if (args.length > 0) throw new UsageError(`unexpected arguments: ${args.join(" ")}`);
  const certs = await watchCertificates({ dir: join(config.certDir, "cli") });
  const channel = createChannel({
    address,
    certs,
    server: spiffeId({
      name: "learning",
      trustDomain: config.trustDomain,
      namespace: config.namespace,
    }),
  });
  try {
    const client = createClient(LearningService, channel);
    const { runId } = await client.triggerTraining({ reason }, { timeoutMs });
    console.log(JSON.stringify({ runId }));
    return 0;
  } finally {
    channel.close();
    certs.close();
  }
}
