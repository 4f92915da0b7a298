import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../config/config.js";
import { openMeshRuntime } from "./mesh-runtime.js";

describe("openMeshRuntime", () => {
  it("fails at start, naming the directory and the way out, when the decision log cannot be written", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agentmesh-logdir-"));
    // A file where the log directory should be: mkdir fails as on a read-only root filesystem.
    writeFileSync(join(dir, "logs"), "");
    const config = { ...loadConfig({ AGENTMESH_HOME: dir }), logDir: join(dir, "logs", "sub") };
    await expect(openMeshRuntime({ config, httpPort: false })).rejects.toThrow(
      new RegExp(
        `the decision log directory ${join(dir, "logs", "sub")} is not writable \\(ENOTDIR\\): mount a writable volume there, set AGENTMESH_LOG_DIR, or set AGENTMESH_DECISION_LOG=stdout`,
      ),
    );
  });
});
