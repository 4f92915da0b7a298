/**
 * A bare grpc-js server in a process of its own, the baseline for what a mesh
 * server process spends per call: mutual TLS with the mesh's certificates, one
 * unary method answering fixed bytes, no interceptors, no decoding, channelz
 * off (as the mesh's own servers and channels run). `bench/gateway` sets it
 * beside the real planner and calls it with a bare grpc-js client from its own
 * main thread, so one phase gives both a bare server's and a bare client's CPU
 * per call.
 *
 * @example
 * const server = await startBareGrpcServer({ certDir, path: "/pkg.Svc/Method", response });
 * // call `127.0.0.1:${server.port}` over mTLS ...
 * await server.close();
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";

export interface BareGrpcServerOptions {
  /** Folder holding `tls.crt`, `tls.key`, `ca.crt`. */
  certDir: string;
  /** `/package.Service/Method` */
  path: string;
  /** The bytes every call is answered with. */
  response: Uint8Array;
}

export interface BareGrpcServer {
  readonly port: number;
  readonly process: ChildProcess;
  close(): Promise<void>;
}

/** Starts the server process (this file, through tsx like the rest of the sources). */
export async function startBareGrpcServer(options: BareGrpcServerOptions): Promise<BareGrpcServer> {
  const child = spawn(
    process.execPath,
    ["--import", import.meta.resolve("tsx/esm"), fileURLToPath(import.meta.url)],
    {
      env: {
        ...process.env,
        BARE_GRPC_SERVER: JSON.stringify({
          certDir: options.certDir,
          path: options.path,
          response: Buffer.from(options.response).toString("base64"),
        }),
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`bare grpc-js server exited (${code})`)));
    createInterface({ input: child.stdout! }).once("line", (line) => resolve(Number(line)));
  });
  return {
    port,
    process: child,
    async close() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill();
      await exited;
    },
  };
}

// In the child: serve until killed.
const config = process.env.BARE_GRPC_SERVER;
if (config !== undefined && process.argv[1] === fileURLToPath(import.meta.url)) {
  const { certDir, path, response } = JSON.parse(config) as {
    certDir: string;
    path: string;
    response: string;
  };
  const answer = Buffer.from(response, "base64");
  const read = (file: string) => readFileSync(join(certDir, file));
  const server = new grpc.Server({ "grpc.enable_channelz": 0 });
  const raw = (b: Buffer) => b;
  server.register(
    path,
    (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      cb(null, answer),
    raw,
    raw,
    "unary",
  );
  const credentials = grpc.ServerCredentials.createSsl(
    read("ca.crt"),
    [{ private_key: read("tls.key"), cert_chain: read("tls.crt") }],
    true,
  );
  server.bindAsync("127.0.0.1:0", credentials, (err, port) => {
    if (err) throw err;
    process.stdout.write(`${port}\n`);
  });
  process.on("SIGTERM", () => {
    server.forceShutdown();
    process.exit(0);
  });
}
