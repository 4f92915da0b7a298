/**
 * The Dockerfile: linted with BuildKit's rules (`docker build --check`, run
 * offline by .ci/dockerfile-lint), a runtime stage that runs as uid 10001 from
 * dist/ with only declared directories to write, and that stage's layout made
 * from the checkout runs the CLI from dist/ with no sources, no compiler
 * cache and a read-only package directory.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { buildDist, layOut, runtimeStage } from "./k8s/image.js";

const root = join(import.meta.dirname, "..");
const dockerfile = join(root, "Dockerfile");
const stage = runtimeStage(dockerfile);
const lint = `${process.env.HOME}/go/bin/agentmesh-dockerfile-lint`;

describe("Dockerfile", () => {
  it("passes BuildKit's lint rules, and the linter refuses a bad Dockerfile", () => {
    if (!existsSync(lint)) {
      if (process.env.CI === "true") throw new Error(`${lint} missing: run .ci/k8s-tools.sh`);
      console.warn("SKIP Dockerfile lint: run .ci/k8s-tools.sh");
      return;
    }
    expect(execFileSync(lint, [dockerfile], { encoding: "utf8" })).toContain("ok");
    const dir = mkdtempSync(join(tmpdir(), "agentmesh-dockerfile-"));
    const bad = join(dir, "Dockerfile");
    execFileSync("sh", ["-c", `printf 'FROM node:22 AS a\\nENV X 1\\nCMD node x.js\\n' > ${bad}`]);
    const r = spawnSync(lint, [bad], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/LegacyKeyValueFormat/);
    expect(r.stdout).toMatch(/JSONArgsRecommended/);
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs as uid 10001 from dist/, writing only to the declared volumes the manifests mount", () => {
    expect(stage.user).toBe("10001:10001");
    expect(stage.workdir).toBe("/app");
    expect(stage.entrypoint).toEqual(["node", "bin/agentmesh.js"]);
    expect(stage.instructions.find((i) => i.startsWith("VOLUME"))).toContain(
      stage.env.AGENTMESH_HOME!,
    );
    expect(stage.instructions.find((i) => i.startsWith("VOLUME"))).toContain(
      stage.env.AGENTMESH_LOG_DIR!,
    );
    const config = parseAllDocuments(
      readFileSync(join(root, "k8s", "base", "config.yaml"), "utf8"),
    )[0]!.toJS().data;
    expect(config.AGENTMESH_HOME).toBe(stage.env.AGENTMESH_HOME);
    expect(config.AGENTMESH_LOG_DIR).toBe(stage.env.AGENTMESH_LOG_DIR);
    const copied = stage.copies.flatMap((c) => c.sources.map((s) => s.replace(/^\/src\//, "")));
    expect(copied).toContain("dist");
    for (const left of ["bench", "test", "cli", "lib", "lib/testing"])
      expect(copied).not.toContain(left);
    const build = runtimeStage(dockerfile);
    expect(readFileSync(dockerfile, "utf8")).toMatch(/RUN npm run build/);
    expect(readFileSync(dockerfile, "utf8")).toMatch(/npm ci --omit=dev --ignore-scripts/);
    expect(
      build.copies.every(
        (c) => c.from !== undefined || c.sources.every((s) => existsSync(join(root, s))),
      ),
    ).toBe(true);
  });

  describe("its layout, made from the checkout", () => {
    const dirs: string[] = [];
    afterAll(() => {
      for (const d of dirs) {
        execFileSync("chmod", ["-R", "u+w", d]);
        rmSync(d, { recursive: true, force: true });
      }
    });

    it("runs the CLI from dist/ with no sources and no bundle cache, and leaves bench/ and test support out", async () => {
      await buildDist(root);
      const app = mkdtempSync(join(tmpdir(), "agentmesh-image-"));
      dirs.push(app);
      layOut(stage, root, app);
      expect(existsSync(join(app, "cli"))).toBe(false);
      expect(existsSync(join(app, "dist", "cli", "main.js"))).toBe(true);
      expect(existsSync(join(app, "dist", "gateway", "web", "app.js"))).toBe(true);
      const shipped = execFileSync("find", [join(app, "dist"), "-name", "*.js"], {
        encoding: "utf8",
      });
      expect(shipped).not.toMatch(/\/(bench|test|testing)\//);
      expect(shipped).not.toMatch(/\.contract\.js|\/testing\.js/);
      expect(readdirSync(app).sort()).toEqual([
        "bin",
        "bundles",
        "dist",
        "gateway",
        "node_modules",
        "package.json",
        "policies",
        "services",
      ]);
      // The read-only root filesystem: nothing under the package may be written.
      execFileSync("chmod", [
        "-R",
        "a-w",
        join(app, "dist"),
        join(app, "bin"),
        join(app, "bundles"),
      ]);
      const home = mkdtempSync(join(tmpdir(), "agentmesh-home-"));
      dirs.push(home);
      const r = spawnSync(process.execPath, ["bin/agentmesh.js", "config", "check"], {
        cwd: app,
        encoding: "utf8",
        env: {
          PATH: process.env.PATH,
          ...stage.env,
          AGENTMESH_HOME: home,
          AGENTMESH_LOG_DIR: join(home, "logs"),
        },
      });
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(/^ok: \d+ settings known/);
      expect(r.status).toBe(0);
    }, 300_000);
  });
});
