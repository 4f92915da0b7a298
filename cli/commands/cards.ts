/**
 * `agentmesh cards keygen|sign`: Ed25519 keys for signing agent cards and the
 * signatures an agent's package ships (ADR-015). The private key stays with
 * whoever releases the agent; the registry knows only the public half, from
 * the signers file (`AGENTMESH_CARD_SIGNERS_FILE`).
 */

import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { AgentCardSchema } from "../../gen/agentmesh/v1/registry_pb.js";
import { generateSigningKey, signCard } from "../../lib/signing/card-signature.js";
import { agentCard } from "../../sdk/agent/define-agent.js";
import { type Command, UsageError } from "../command.js";
import { loadAgentFile } from "./agent-file.js";

const usage = `agentmesh cards <keygen|sign> ...

  keygen --signer NAME [--out DIR]
      Writes a new Ed25519 key pair, DIR/NAME.key (private, mode 0600) and DIR/NAME.pub
      (default DIR: the current one), and prints the signers-file entry of the public key.
  sign FILE --signer NAME --key KEYFILE [--export NAME]
      Signs the card of FILE: an agent module (defineAgent, as 'agent run' loads it) or a
      card as proto JSON (.json). For a module it prints the signature to ship as
      defineAgent's 'signature'; for a card, the signed card.`;

function flags(
  args: string[],
  names: readonly string[],
): { rest: string[]; values: Map<string, string> } {
  const values = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a.startsWith("--")) {
      const name = a.slice(2);
      const value = args[i + 1];
      if (!names.includes(name) || value === undefined)
        throw new UsageError(`unexpected argument ${a}`);
      values.set(name, value);
      i++;
    } else rest.push(a);
  }
  return { rest, values };
}

function required(values: Map<string, string>, name: string): string {
  const v = values.get(name);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

const signerPattern = /^[a-z][a-z0-9._-]{0,63}$/;

export const cards: Command = {
  name: "cards",
  summary: "sign agent cards (Ed25519): generate a key pair, sign a card",
  usage,
  async run(args) {
    const [sub, ...rest] = args;
    if (sub === "keygen") {
      const { rest: extra, values } = flags(rest, ["signer", "out"]);
      if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}`);
      const signer = required(values, "signer");
      if (!signerPattern.test(signer))
        throw new UsageError("--signer: lowercase letters, digits, '.', '_', '-' (at most 64)");
      const out = values.get("out") ?? ".";
      await mkdir(out, { recursive: true });
      const { privateKeyPem, publicKeyPem } = generateSigningKey();
      const keyFile = join(out, `${signer}.key`);
      await writeFile(keyFile, privateKeyPem, { mode: 0o600, flag: "wx" }).catch((err) => {
        if ((err as NodeJS.ErrnoException).code === "EEXIST")
          throw new UsageError(`${keyFile} exists; not overwriting a signing key`);
        throw err;
      });
      await chmod(keyFile, 0o600);
      await writeFile(join(out, `${signer}.pub`), publicKeyPem);
      console.error(`wrote ${keyFile} (keep it secret) and ${join(out, `${signer}.pub`)}`);
      console.log(JSON.stringify({ signers: { [signer]: publicKeyPem } }, null, 2));
      return 0;
    }
    if (sub === "sign") {
      const { rest: files, values } = flags(rest, ["signer", "key", "export"]);
      if (files.length !== 1) throw new UsageError("sign takes one FILE");
      const file = files[0] as string;
      const key = { signer: required(values, "signer"), privateKeyPem: "" };
      key.privateKeyPem = await readFile(required(values, "key"), "utf8");
      if (extname(file) === ".json") {
        const json = JSON.parse(await readFile(file, "utf8")) as JsonValue;
        const signed = signCard(fromJson(AgentCardSchema, json), key);
        console.log(JSON.stringify(toJson(AgentCardSchema, signed), null, 2));
        return 0;
      }
      const agent = await loadAgentFile(file, values.get("export"));
      // The card as runAgent will send it, minus any signature shipped already.
      const signed = signCard(agentCard({ ...agent, signature: undefined }), key);
      console.log(JSON.stringify({ signer: key.signer, signature: signed.signature?.signature }));
      return 0;
    }
    throw new UsageError(sub === undefined ? "missing sub-command" : `unknown sub-command ${sub}`);
  },
};
