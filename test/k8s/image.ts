/**
 * The image's runtime stage as the Dockerfile declares it, and the same
 * layout made from the checkout, so tests run exactly what the image runs
 * without a container runtime: its WORKDIR, ENV, USER and ENTRYPOINT, and its
 * files laid out by the stage's COPY lines (`--from=build` is the checkout's
 * `npm run build` output, `--from=deps` its node_modules, linked).
 */
import { cpSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";

export interface ImageStage {
  workdir: string;
  env: Record<string, string>;
  user: string;
  entrypoint: string[];
  /** [source in the build context or another stage, destination relative to WORKDIR, stage]. */
  copies: { from: string | undefined; sources: string[]; dest: string }[];
  /** Every instruction of the stage, for assertions. */
  instructions: string[];
}

/** The last stage of `dockerfile` (the runtime image). */
export function runtimeStage(dockerfile: string): ImageStage {
  const text = readFileSync(dockerfile, "utf8").replace(/\\\n/g, " ");
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const start = lines.map((l) => l.startsWith("FROM ")).lastIndexOf(true);
  const stage: ImageStage = {
    workdir: "/",
    env: {},
    user: "root",
    entrypoint: [],
    copies: [],
    instructions: lines.slice(start),
  };
  for (const line of stage.instructions) {
    const [op, ...rest] = line.split(/\s+/);
    const args = rest.join(" ");
    if (op === "WORKDIR") stage.workdir = args;
    else if (op === "USER") stage.user = args;
    else if (op === "ENTRYPOINT") stage.entrypoint = JSON.parse(args);
    else if (op === "ENV") {
      for (const m of args.matchAll(/(\w+)=(\S+)/g)) stage.env[m[1]!] = m[2]!;
    } else if (op === "COPY") {
      const from = rest[0]?.startsWith("--from=") ? rest.shift()!.slice(7) : undefined;
      const dest = rest.pop()!;
      stage.copies.push({ from, sources: rest, dest });
    }
  }
  return stage;
}

/**
 * Lays the runtime stage out under `into` (standing in for WORKDIR) from the
 * checkout at `root`, whose `dist/` must be built. Returns the directory.
 */
export function layOut(stage: ImageStage, root: string, into: string): string {
  for (const { from, sources, dest } of stage.copies) {
    for (const source of sources) {
      const target = dest.endsWith("/")
        ? join(into, dest, source.split("/").pop()!)
        : join(into, dest);
      mkdirSync(dirname(target), { recursive: true });
      if (from === "deps") symlinkSync(join(root, "node_modules"), target);
      else if (from === "build")
        cpSync(join(root, source.replace(/^\/src\//, "")), target, { recursive: true });
      else if (from === undefined) cpSync(join(root, source), target, { recursive: true });
      else throw new Error(`COPY --from=${from} is not laid out by test/k8s/image.ts`);
    }
  }
  return into;
}

export { buildDist } from "../support/build-dist.js";
