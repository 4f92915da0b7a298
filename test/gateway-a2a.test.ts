/**
 * The A2A endpoint end to end with the `@a2a-js/sdk` client: card discovery,
 * a message that runs a goal, its events streamed over SSE, a task read and
 * cancelled, and the refusals (no credentials, another tenant's task, the
 * policy) as A2A/JSON-RPC errors. Real mesh behind the gateway (real
 * PostgreSQL, NATS, mTLS, compiled policy).
 */
import { type AgentCard, Role, type StreamResponse, TaskState } from "@a2a-js/sdk";
import {
  type Client,
  ClientFactory,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
} from "@a2a-js/sdk/client";
import { TaskNotCancelableError, TaskNotFoundError } from "@a2a-js/sdk/errors";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inputSchemasExtension } from "../gateway/a2a/agent-card.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { waitFor } from "../lib/testing/wait-for.js";
import { diamondKind, type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();

/** A fetch that sends the API key, as an A2A client configured with the card's `apiKey` scheme does. */
const withKey =
  (apiKey: string | undefined): typeof fetch =>
  (input, init) => {
    const headers = new Headers(init?.headers);
    if (apiKey) headers.set("x-api-key", apiKey);
    return fetch(input, { ...init, headers });
  };

async function clientFor(url: string, apiKey: string | undefined): Promise<Client> {
  const fetchImpl = withKey(apiKey);
  const factory = new ClientFactory({
    transports: [new JsonRpcTransportFactory({ fetchImpl })],
    cardResolver: new DefaultAgentCardResolver({ fetchImpl }),
  });
  return factory.createFromUrl(url);
}

function message(skill: string, data: Record<string, unknown>, messageId = crypto.randomUUID()) {
  return {
    tenant: "",
    message: {
      messageId,
      contextId: "",
      taskId: "",
      role: Role.ROLE_USER,
      parts: [
        {
          content: { $case: "data" as const, value: data },
          metadata: undefined,
          filename: "",
          mediaType: "",
        },
      ],
      metadata: { skill },
      extensions: [],
      referenceTaskIds: [],
    },
    configuration: undefined,
    metadata: undefined,
  };
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a failure");
}

describe.skipIf(!pg || !nats)("gateway A2A endpoint", () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url });
  }, 60_000);
  afterAll(() => f?.close());

  it("serves the agent card: auth schemes to anyone, the tenant's goal kinds with schemas once authenticated", async () => {
    const anonymous = (await (
      await fetch(`${f.url}/.well-known/agent-card.json`)
    ).json()) as Record<string, object>;
    expect(Object.keys(anonymous.securitySchemes ?? {})).toEqual(["apiKey", "bearer"]);
    expect(anonymous.skills).toEqual([]);

    const resolver = new DefaultAgentCardResolver({ fetchImpl: withKey(f.keys.acmeWriter) });
    const card: AgentCard = await resolver.resolve(f.url);
    expect(card.supportedInterfaces[0]).toMatchObject({
      url: `${f.url}/a2a`,
      protocolBinding: "JSONRPC",
      protocolVersion: "1.0",
    });
    expect(card.capabilities?.streaming).toBe(true);
    expect(card.securitySchemes.apiKey?.scheme).toEqual({
      $case: "apiKeySecurityScheme",
      value: expect.objectContaining({ location: "header", name: "x-api-key" }),
    });
    expect(card.securitySchemes.bearer?.scheme?.$case).toBe("httpAuthSecurityScheme");
    const skills = card.skills.map((s) => s.id);
    expect(skills).toEqual(expect.arrayContaining(["echo", "wait", diamondKind]));
    const schemas = card.capabilities?.extensions.find(
      (e) => e.uri === inputSchemasExtension,
    )?.params;
    expect(schemas?.wait).toMatchObject({ type: "object", required: ["ms"] });
  });

  it("runs a goal for a message and answers with the completed task and its output", async () => {
    const client = await clientFor(f.url, f.keys.acmeWriter);
    const result = await client.sendMessage(message("echo", { message: "over a2a" }));
    expect("status" in result).toBe(true);
    const task = result as Extract<typeof result, { status: unknown }>;
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    const part = task.artifacts[0]?.parts[0]?.content;
    expect(part).toEqual({
      $case: "data",
      value: expect.objectContaining({ message: "over a2a" }),
    });

    const again = await client.getTask({ tenant: "", id: task.id });
    expect(again.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    // The v0.3 method name is an alias with the same (v1.0) answer.
    const legacy = await fetch(`${f.url}/a2a`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": f.keys.acmeWriter },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: "x",
        method: "tasks/get",
        params: { id: task.id },
      }),
    });
    expect(await legacy.json()).toMatchObject({
      jsonrpc: "2.0",
      id: "x",
      result: { id: task.id, status: { state: "TASK_STATE_COMPLETED" } },
    });
    // The goal is the mesh's: the Connect API sees the same goal.
    const goal = await f.store.tenant("acme").goals.find(task.id);
    expect(goal?.kind).toBe("echo");
  });

  it("streams a goal's events over SSE, ending with the artifact and the completed state", async () => {
    const client = await clientFor(f.url, f.keys.acmeWriter);
    const events: StreamResponse[] = [];
    for await (const event of client.sendMessageStream(message(diamondKind, { topic: "tides" }))) {
      events.push(event as StreamResponse);
    }
    const cases = events.map((e) => e.payload?.$case);
    expect(cases[0]).toBe("task");
    // One status update per goal event: at least submitted, planned, 4 steps succeeded, finished.
    expect(cases.filter((c) => c === "statusUpdate").length).toBeGreaterThanOrEqual(7);
    const states = events.flatMap((e) =>
      e.payload?.$case === "statusUpdate" ? [e.payload.value.status?.state] : [],
    );
    expect(states).toContain(TaskState.TASK_STATE_WORKING);
    expect(states.at(-1)).toBe(TaskState.TASK_STATE_COMPLETED);
    const steps = events.flatMap((e) =>
      e.payload?.$case === "statusUpdate" && e.payload.value.metadata?.event === "stepSucceeded"
        ? [e.payload.value.metadata.stepId]
        : [],
    );
    expect(steps.sort()).toEqual(["analyze", "fetch", "plan", "report"]);
    expect(cases.at(-2)).toBe("artifactUpdate");
  });

  it("gets and cancels a long-running task; a finished one is not cancelable", async () => {
    const client = await clientFor(f.url, f.keys.acmeWriter);
    const request = {
      ...message("wait", { ms: 60_000 }),
      configuration: { returnImmediately: true },
    };
    const started = await client.sendMessage(request as never);
    const id = (started as { id: string }).id;
    const running = await client.getTask({ tenant: "", id });
    expect([TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING]).toContain(
      running.status?.state,
    );
    const cancelled = await client.cancelTask({ tenant: "", id, metadata: undefined });
    expect(cancelled.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    expect((await client.getTask({ tenant: "", id })).status?.state).toBe(
      TaskState.TASK_STATE_CANCELED,
    );
    expect(
      await failure(client.cancelTask({ tenant: "", id, metadata: undefined })),
    ).toBeInstanceOf(TaskNotCancelableError);
  });

  it("refuses calls without credentials, another tenant's tasks, and what the policy denies", async () => {
    const acme = await clientFor(f.url, f.keys.acmeWriter);
    const done = (await acme.sendMessage(message("echo", { message: "mine" }))) as { id: string };

    // Without credentials: HTTP 401 and a JSON-RPC error naming UNAUTHENTICATED.
    const anonymous = await clientFor(f.url, undefined);
    const noKey = (await failure(anonymous.getTask({ tenant: "", id: done.id }))) as {
      envelopeCode: number;
    };
    expect(noKey.envelopeCode).toBe(-32116);
    const raw = await fetch(`${f.url}/a2a`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "GetTask", params: { id: done.id } }),
    });
    expect(raw.status).toBe(401);
    const body = (await raw.json()) as { error: { code: number; data: { code: string } } };
    expect(body.error).toMatchObject({ code: -32116, data: { code: "UNAUTHENTICATED" } });

    // Another tenant's task does not exist for globex.
    const globex = await clientFor(f.url, f.keys.globexWriter);
    expect(await failure(globex.getTask({ tenant: "", id: done.id }))).toBeInstanceOf(
      TaskNotFoundError,
    );
    expect(
      await failure(globex.cancelTask({ tenant: "", id: done.id, metadata: undefined })),
    ).toBeInstanceOf(TaskNotFoundError);

    // A reader may not run goals: the policy's PERMISSION_DENIED, audited.
    const reader = await clientFor(f.url, f.keys.acmeReader);
    const denied = (await failure(reader.sendMessage(message("echo", { message: "no" })))) as {
      envelopeCode: number;
      data: { code: string };
      message: string;
    };
    expect(denied.envelopeCode).toBe(-32107);
    expect(denied.data.code).toBe("PERMISSION_DENIED");
    expect(denied.message).toMatch(/may not call agentmesh.v1.ExecutorService\/SubmitGoal/);
    // The denial is audited (appended after the answer, so polled).
    await waitFor(
      "the denial in the audit log",
      async () =>
        (await f.store.audit.list({ tenantId: "acme", limit: 1000 })).some(
          (e) =>
            e.action === "policy.denied" &&
            e.resource === "/agentmesh.v1.ExecutorService/SubmitGoal" &&
            String((e.details as { principal?: string }).principal).startsWith("acme/"),
        ),
      5_000,
    );
  });

  it("answers hostile or malformed JSON-RPC with the right error and runs nothing", async () => {
    const post = async (body: string) => {
      const res = await fetch(`${f.url}/a2a`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": f.keys.acmeWriter },
        body,
      });
      return { status: res.status, body: (await res.json()) as { error: { code: number } } };
    };
    const newest = async () =>
      (await f.store.tenant("acme").goals.list({ pageSize: 1 })).goals[0]?.id;
    const before = await newest();
    expect((await post("{not json")).body.error.code).toBe(-32700);
    expect((await post("[]")).body.error.code).toBe(-32600);
    expect((await post('{"jsonrpc":"1.0","id":1,"method":"GetTask"}')).body.error.code).toBe(
      -32600,
    );
    expect((await post('{"jsonrpc":"2.0","id":1,"method":"Nope"}')).body.error.code).toBe(-32601);
    const noSkill = {
      jsonrpc: "2.0",
      id: 1,
      method: "SendMessage",
      params: { message: { parts: [{ data: {} }] } },
    };
    expect((await post(JSON.stringify(noSkill))).body.error.code).toBe(-32602);
    const deep = `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":${"[".repeat(100)}${"]".repeat(100)}}`;
    expect((await post(deep)).body.error.code).toBe(-32602);
    const huge = await post(
      `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"x":"${"a".repeat(1100 * 1024)}"}}`,
    );
    expect(huge.status).toBe(413);
    expect(huge.body.error).toMatchObject({ code: -32108, data: { retryable: false } });
    expect(await newest()).toBe(before);
  });
});
