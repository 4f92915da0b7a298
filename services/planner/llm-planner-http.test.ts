// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step templates
/**
 * The HTTP LLM planner against a local stand-in for an OpenAI-compatible
 * endpoint (127.0.0.1, chat-completions response shape): no real model runs.
 */
import { mkdtempSync, renameSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { createLogger } from "../../lib/log/logger.js";
import { openFileSecrets } from "../../lib/secrets/file-secrets.js";
import type { LlmPlanRequest } from "./domain/index.js";
import { createHttpLlmPlanner, llmPlannerFromEnv } from "./llm-planner-http.js";

const apiKey = "sk-test-3c9f1e0d7b-never-log-me";

interface Seen {
  url: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}
type Reply = (res: ServerResponse, seen: Seen) => void;

let server: Server;
let baseUrl: string;
let reply: Reply;
const seen: Seen[] = [];

const completion =
  (content: string): Reply =>
  (res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        id: "chatcmpl-1",
        object: "chat.completion",
        model: "stand-in",
        choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content } }],
      }),
    );
  };

const validPlan = JSON.stringify({
  steps: [
    { id: "k", capability: "text.keywords", input: { text: "${input.text}" } },
    { id: "s", capability: "text.summarize", depends_on: ["k"] },
  ],
  output_step: "s",
});

const request: LlmPlanRequest = {
  goalKind: "brief",
  input: { text: "hello world" },
  capabilities: [
    { capability: "text.keywords", description: "keywords of a text" },
    { capability: "text.summarize", description: "summary of a text" },
  ],
};

/** A logger at debug level whose lines are kept. */
function capturedLog() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: createLogger({ name: "test", level: "debug", destination }), lines };
}

async function rejected(p: Promise<unknown>): Promise<MeshError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(MeshError);
    return err as MeshError;
  }
  throw new Error("expected a rejection");
}

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const s: Seen = {
        url: req.url ?? "",
        authorization: req.headers.authorization,
        body: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}"),
      };
      seen.push(s);
      reply(res, s);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterEach(() => {
  seen.length = 0;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe("http llm planner", () => {
  const planner = (extra: Partial<Parameters<typeof createHttpLlmPlanner>[0]> = {}) =>
    createHttpLlmPlanner({
      endpoint: baseUrl,
      model: "stand-in",
      apiKey: async () => apiKey,
      timeoutMs: 2000,
      ...extra,
    });

  it("accepts a valid plan, sending model, messages, json mode and the bearer key", async () => {
    reply = completion(validPlan);
    const strategy = await planner().propose(request);
    expect(strategy.name).toBe("llm");
    expect(strategy.steps.map((s) => [s.stepId, s.capability])).toEqual([
      ["k", "text.keywords"],
      ["s", "text.summarize"],
    ]);
    expect(strategy.steps[1]!.dependsOn).toEqual(["k"]);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.url).toBe("/v1/chat/completions");
    expect(seen[0]!.authorization).toBe(`Bearer ${apiKey}`);
    expect(seen[0]!.body.model).toBe("stand-in");
    expect(seen[0]!.body.response_format).toEqual({ type: "json_object" });
    const messages = seen[0]!.body.messages as Array<{ role: string; content: string }>;
    expect(messages.map((m) => m.role)).toEqual(["system", "user"]);
    expect(messages[0]!.content).toContain("- text.summarize: summary of a text");
  });

  it("omits response_format in plain mode and the header without a key", async () => {
    reply = completion(`Here is the plan:\n\`\`\`json\n${validPlan}\n\`\`\``);
    await planner({ jsonMode: false, apiKey: async () => undefined }).propose(request);
    expect(seen[0]!.body).not.toHaveProperty("response_format");
    expect(seen[0]!.authorization).toBeUndefined();
  });

  it("rejects a plan naming a capability no live agent offers", async () => {
    reply = completion(JSON.stringify({ steps: [{ id: "x", capability: "shell.exec" }] }));
    const err = await rejected(planner().propose(request));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.retryable).toBe(false);
    expect(JSON.stringify(err.details)).toContain("unknown capabilities: shell.exec");
  });

  it("rejects a plan that is not a DAG", async () => {
    reply = completion(
      JSON.stringify({
        steps: [
          { id: "a", capability: "text.keywords", depends_on: ["b"] },
          { id: "b", capability: "text.summarize", depends_on: ["a"] },
        ],
      }),
    );
    expect((await rejected(planner().propose(request))).code).toBe(Code.InvalidArgument);
  });

  it("rejects malformed JSON, in the plan and in the response body", async () => {
    reply = completion('{"steps": [ {"id": "k", ');
    const bad = await rejected(planner().propose(request));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.message).toMatch(/not JSON/);

    reply = (res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end("<html>gateway</html>");
    };
    expect((await rejected(planner().propose(request))).code).toBe(Code.InvalidArgument);

    reply = (res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ choices: [] }));
    };
    expect((await rejected(planner().propose(request))).message).toMatch(/choices\[0\]/);
  });

  it("maps 500 and 429 to UNAVAILABLE (retryable), 401 to FAILED_PRECONDITION", async () => {
    reply = (res) => {
      res.writeHead(500);
      res.end("boom");
    };
    const err = await rejected(planner().propose(request));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.retryable).toBe(true);

    reply = (res) => {
      res.writeHead(429);
      res.end();
    };
    expect((await rejected(planner().propose(request))).code).toBe(Code.Unavailable);

    reply = (res) => {
      res.writeHead(401);
      res.end('{"error":"bad key"}');
    };
    const denied = await rejected(planner().propose(request));
    expect(denied.code).toBe(Code.FailedPrecondition);
    expect(denied.retryable).toBe(false);
  });

  it("maps an unreachable endpoint to UNAVAILABLE", async () => {
    const err = await rejected(
      planner({ endpoint: "http://127.0.0.1:1/v1", timeoutMs: 2000 }).propose(request),
    );
    expect(err.code).toBe(Code.Unavailable);
  });

  it("times out with DEADLINE_EXCEEDED when the endpoint never answers", async () => {
    reply = () => {}; // hold the request open
    const started = Date.now();
    const err = await rejected(planner({ timeoutMs: 150 }).propose(request));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("reports CANCELED when the caller aborts", async () => {
    reply = () => {};
    const ac = new AbortController();
    const p = planner().propose(request, ac.signal);
    setTimeout(() => ac.abort(), 50);
    expect((await rejected(p)).code).toBe(Code.Canceled);
  });

  it("caps the response size", async () => {
    reply = completion(`${validPlan}${" ".repeat(4096)}`);
    const err = await rejected(planner({ maxResponseBytes: 1024 }).propose(request));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toMatch(/exceeds 1024 bytes/);
  });

  it("never logs the API key, on success or failure", async () => {
    const { log, lines } = capturedLog();
    const p = planner({ log });
    reply = completion(validPlan);
    await p.propose(request);
    reply = (res) => {
      res.writeHead(503);
      res.end();
    };
    const err = await rejected(p.propose(request));
    await rejected(planner({ log, endpoint: "http://127.0.0.1:1/v1" }).propose(request));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    const all = lines.join("\n");
    expect(all).toContain("llm planner answered");
    expect(all).not.toContain(apiKey);
    expect(`${err.message} ${JSON.stringify(err.details)}`).not.toContain(apiKey);
  });
});

describe("llmPlannerFromEnv", () => {
  it("is off unless AGENTMESH_LLM_PLANNER_URL is set", () => {
    expect(llmPlannerFromEnv({})).toBeUndefined();
    expect(llmPlannerFromEnv({ AGENTMESH_LLM_PLANNER_MODEL: "m" })).toBeUndefined();
  });

  it("requires a model and a valid URL when on", () => {
    expect(() => llmPlannerFromEnv({ AGENTMESH_LLM_PLANNER_URL: baseUrl })).toThrow(/model/);
    expect(() =>
      llmPlannerFromEnv({ AGENTMESH_LLM_PLANNER_URL: "nope", AGENTMESH_LLM_PLANNER_MODEL: "m" }),
    ).toThrow(/endpoint/);
  });

  it("sends the llm-planner-api-key secret, a rotated key from the next request on", async () => {
    reply = completion(validPlan);
    const env = { AGENTMESH_LLM_PLANNER_URL: baseUrl, AGENTMESH_LLM_PLANNER_MODEL: "stand-in" };
    // As Kubernetes delivers a secretKeyRef: the variable, read by lib/secrets.
    const fromVariable = openFileSecrets({
      home: mkdtempSync(join(tmpdir(), "llm-key-")),
      env: { AGENTMESH_LLM_PLANNER_API_KEY: apiKey },
      pollMs: 0,
    });
    await llmPlannerFromEnv(env, undefined, fromVariable)!.propose(request);
    expect(seen[0]!.authorization).toBe(`Bearer ${apiKey}`);
    await fromVariable.close();

    // As a mounted Secret: a file, swapped by rename.
    const dir = mkdtempSync(join(tmpdir(), "llm-key-"));
    writeFileSync(join(dir, "llm-planner-api-key"), "sk-first\n");
    const mounted = openFileSecrets({ home: dir, env: { AGENTMESH_SECRETS_DIR: dir }, pollMs: 50 });
    try {
      const llm = llmPlannerFromEnv(env, undefined, mounted)!;
      await llm.propose(request);
      expect(seen[1]!.authorization).toBe("Bearer sk-first");
      writeFileSync(join(dir, "next"), "sk-second\n");
      renameSync(join(dir, "next"), join(dir, "llm-planner-api-key"));
      await vi.waitFor(
        async () => expect(await mounted.get("llm-planner-api-key")).toBe("sk-second"),
        {
          timeout: 10_000,
        },
      );
      await llm.propose(request);
      expect(seen[2]!.authorization).toBe("Bearer sk-second");
    } finally {
      await mounted.close();
    }
  });
});
