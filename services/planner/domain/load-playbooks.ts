/**
 * Loads the playbooks of a directory: every `*.yaml` / `*.yml` file holds one
 * playbook. All files are checked before failing, so one run shows every
 * broken file; two files for one goal kind are an error too.
 *
 * @example
 * const playbooks = await loadPlaybookDir(builtinPlaybookDir);
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Playbook } from "../../../gen/agentmesh/v1/planner_pb.js";
import { packagePath } from "../../../lib/config/package-root.js";
import { Code, isMeshError, MeshError } from "../../../lib/errors/mesh-error.js";
import { parsePlaybookYaml } from "./playbook-file.js";

/** The directory of the built-in playbooks shipped with the planner. */
export const builtinPlaybookDir = packagePath("services", "planner", "playbooks");

/**
 * Parses every playbook file of `dir`, sorted by file name. Throws
 * INVALID_ARGUMENT listing the problems of every bad file
 * (`details.files[]` holds each file's error details), NOT_FOUND when the
 * directory does not exist.
 */
export async function loadPlaybookDir(dir: string): Promise<Playbook[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort();
  } catch (err) {
    throw new MeshError(Code.NotFound, `playbook directory ${dir} cannot be read`, { cause: err });
  }
  const playbooks: Playbook[] = [];
  const failures: MeshError[] = [];
  const fileOf = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, name);
    try {
      const playbook = parsePlaybookYaml(await readFile(file, "utf8"), file);
      const other = fileOf.get(playbook.goalKind);
      if (other !== undefined) {
        throw new MeshError(
          Code.InvalidArgument,
          `invalid playbook file ${file}: goal kind "${playbook.goalKind}" is already defined in ${other}`,
          { details: { file } },
        );
      }
      fileOf.set(playbook.goalKind, file);
      playbooks.push(playbook);
    } catch (err) {
      failures.push(isMeshError(err) ? err : MeshError.from(err));
    }
  }
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) {
    throw new MeshError(
      Code.InvalidArgument,
      `${failures.length} playbook files are invalid:\n${failures.map((f) => f.message).join("\n")}`,
      { details: { files: failures.map((f) => f.details) } },
    );
  }
  return playbooks;
}
