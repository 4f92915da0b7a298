#!/usr/bin/env node
// `npm run generate`: the TypeScript code (buf.gen.yaml → gen/) and, when the
// Go plugins pinned in .ci/tools.sh are installed, the Go SDK
// (buf.gen.go.yaml → sdk/go/gen), so a proto change regenerates both. Without
// the plugins sdk/go is left as it is, with a warning: CI regenerates it and
// fails when it is stale.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const buf = join(root, "node_modules", ".bin", "buf");
const goBin = join(process.env.GOPATH ?? join(homedir(), "go"), "bin");
const path = [goBin, process.env.PATH ?? ""].join(delimiter);
const run = (args) =>
  execFileSync(buf, args, { cwd: root, stdio: "inherit", env: { ...process.env, PATH: path } });

run(["generate"]);
const plugins = ["protoc-gen-go", "protoc-gen-go-grpc", "protoc-gen-connect-go"];
const found = (name) => path.split(delimiter).some((dir) => dir && existsSync(join(dir, name)));
const missing = plugins.filter((p) => !found(p));
if (missing.length === 0) run(["generate", "--template", "buf.gen.go.yaml"]);
else {
  console.warn(
    `sdk/go not regenerated: ${missing.join(", ")} not found (bash .ci/tools.sh installs them)`,
  );
}
