/**
 * `agentmesh playbook`: the goal kinds a tenant can submit. Files are the
 * proto JSON form of `Playbook` in YAML or JSON (`services/planner/domain/playbook-file.ts`),
 * the same shape the built-in files use and `show` prints; `validate` checks
 * them offline, `put` checks them the same way and then stores them as the
 * caller's tenant's through the gateway (PlannerService.PutPlaybook).
 */
import { readFile, stat } from "node:fs/promises";
import { toJson } from "@bufbuild/protobuf";
import { stringify } from "yaml";
import { PlaybookSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import { isMeshError } from "../../lib/errors/mesh-error.js";
import {
  maxPlaybookBytes,
  parsePlaybookYaml,
} from "../../services/planner/domain/playbook-file.js";
import { type Command, UsageError } from "../command.js";
import { flags, meshFromEnv, reporting, table } from "./gateway-client.js";

const usage = `agentmesh playbook <ls|show|get|validate|put|rm> [options]   (AGENTMESH_URL, AGENTMESH_API_KEY)

  ls                   the playbooks your tenant sees (its own, and the built-in ones)
  show KIND [--json]   one playbook, as a file for put (YAML; --json for JSON); also: get
  validate FILE...     check playbook files offline (exit 1 naming every problem and its line)
  put FILE             check a file, then store it as your tenant's playbook of its goal kind
                       (a tenant.admin key; steps need capabilities the policy can dispatch)
  rm KIND              delete your tenant's playbook of KIND (built-in ones stay)

A file is the proto JSON form of agentmesh.v1.Playbook in YAML or JSON: goalKind,
description, inputSchema, strategies[] of { name, outputStep, steps[] of { stepId,
capability | subGoal, input, dependsOn, retry, timeout: "30s", replicas } }.`;

/** `agentmesh playbook ls|show|validate|put|rm`. */
export const playbook: Command = {
  name: "playbook",
  summary: "list, show, validate, put and delete playbooks (goal kinds)",
  usage,
  run: (args) => reporting(() => dispatch(args)),
};

async function dispatch(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "ls": {
      flags(rest, {});
      const { playbooks } = await (await meshFromEnv()).planner.listPlaybooks({});
      table(
        ["KIND", "OWNER", "VERSION", "STRATEGIES", "DESCRIPTION"],
        playbooks.map((p) => [
          p.goalKind,
          p.tenantId || "built-in",
          p.tenantId ? String(p.version) : "-",
          p.strategies.map((s) => s.name).join(","),
          p.description,
        ]),
      );
      return 0;
    }
    case "show":
    case "get": {
      const { values, positionals } = flags(rest, { json: { type: "boolean" } });
      const kind = positionals[0];
      if (!kind) throw new UsageError("show needs a goal kind");
      const { playbook: p } = await (await meshFromEnv()).planner.getPlaybook({ goalKind: kind });
      if (!p) return 1;
      const json = toJson(PlaybookSchema, p);
      process.stdout.write(values.json ? `${JSON.stringify(json, null, 2)}\n` : stringify(json));
      return 0;
    }
    case "validate": {
      const { positionals } = flags(rest, {});
      if (positionals.length === 0) throw new UsageError("validate needs a file");
      let failed = 0;
      for (const file of positionals) {
        try {
          const p = parsePlaybookYaml(await readPlaybookFile(file), file);
          console.log(`${file}: ok (goal kind ${p.goalKind})`);
        } catch (err) {
          if (!isMeshError(err)) throw err;
          console.error(err.message);
          failed++;
        }
      }
      return failed > 0 ? 1 : 0;
    }
    case "put": {
      const { positionals } = flags(rest, {});
      const file = positionals[0];
      if (!file) throw new UsageError("put needs a file");
      let parsed: ReturnType<typeof parsePlaybookYaml>;
      try {
        parsed = parsePlaybookYaml(await readPlaybookFile(file), file);
      } catch (err) {
        if (!isMeshError(err)) throw err;
        console.error(err.message);
        return 1;
      }
      const { playbook: stored } = await (await meshFromEnv()).planner.putPlaybook({
        playbook: parsed,
      });
      console.log(`put playbook ${stored?.goalKind} version ${stored?.version}`);
      return 0;
    }
    case "rm": {
      const { positionals } = flags(rest, {});
      const kind = positionals[0];
      if (!kind) throw new UsageError("rm needs a goal kind");
      await (await meshFromEnv()).planner.deletePlaybook({ goalKind: kind });
      console.log(`deleted playbook ${kind}`);
      return 0;
    }
    default:
      throw new UsageError(
        sub ? `unknown sub-command ${JSON.stringify(sub)}` : "missing sub-command",
      );
  }
}

async function readPlaybookFile(file: string): Promise<string> {
  const size = await stat(file).then(
    (st) => st.size,
    (err: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read ${file}: ${err.code ?? err.message}`);
    },
  );
  // Too large: parsePlaybookYaml refuses it by name without this reading all of it.
  if (size > maxPlaybookBytes) return " ".repeat(maxPlaybookBytes + 1);
  return readFile(file, "utf8");
}
