import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  type Agent,
  AgentCardSchema,
  AgentChangeKind,
  AgentSchema,
  AgentState,
  type SideEffect,
  SkillSchema,
  ToolSchema,
} from "../../../gen/agentmesh/v1/registry_pb.js";
import { Code, type MeshError } from "../../../lib/errors/mesh-error.js";
import {
  agentChange,
  expiredAgents,
  liveCapabilities,
  rankCandidates,
  watchMatches,
  watchSnapshot,
} from "./agents.js";
import { cardViolations, validateCard, validateTool } from "./card.js";
import { heartbeatIntervalMs, leaseTtlMs } from "./lease.js";

const card = (over: MessageInitShape<typeof AgentCardSchema> = {}) =>
  create(AgentCardSchema, {
    name: "text-agent",
    version: "1.0.0",
    skills: [
      create(SkillSchema, {
        capability: "text.summarize",
        inputSchema: { type: "object", properties: { text: { type: "string" } } },
        maxConcurrency: 4,
      }),
    ],
    ...over,
  });

function agent(id: string, over: MessageInitShape<typeof AgentSchema> = {}): Agent {
  return create(AgentSchema, {
    agentId: id,
    card: card(),
    state: AgentState.LIVE,
    leaseExpiresAt: timestampFromMs(10_000),
    lastHeartbeatAt: timestampFromMs(1_000),
    ...over,
  });
}

describe("card validation", () => {
  it("accepts a good card and the same card twice (schemas with $id too)", () => {
    const c = card({
      tools: [
        create(ToolSchema, {
          name: "http.fetch",
          authScope: "tools:http",
          rateLimit: { perSecond: 5, burst: 10 },
          inputSchema: { $id: "x", type: "object" },
        }),
      ],
    });
    expect(cardViolations(c)).toEqual([]);
    expect(cardViolations(c)).toEqual([]);
    expect(validateCard(c)).toBe(c);
  });

  it("lists every problem with its path", () => {
    const bad = card({
      name: "Text Agent",
      version: "",
      skills: [
        create(SkillSchema, { capability: "Text.Summarize" }),
        create(SkillSchema, {
          capability: "a.b",
          maxConcurrency: 100_000,
          inputSchema: { type: "wat" },
        }),
        create(SkillSchema, { capability: "a.b" }),
      ],
      tools: [
        create(ToolSchema, {
          name: "x y",
          authScope: "ALL",
          rateLimit: { perSecond: -1, burst: 0 },
          sideEffect: 7 as SideEffect,
        }),
      ],
    });
    const paths = cardViolations(bad).map((v) => v.path);
    expect(paths).toEqual([
      "name",
      "version",
      "skills[0].capability",
      "skills[1].max_concurrency",
      "skills[1].input_schema",
      "skills[2].capability",
      "tools[0].name",
      "tools[0].auth_scope",
      "tools[0].rate_limit.per_second",
      "tools[0].side_effect",
    ]);
    try {
      validateCard(bad);
      expect.unreachable();
    } catch (err) {
      expect((err as MeshError).code).toBe(Code.InvalidArgument);
      expect((err as MeshError).message).toMatch(
        /skills\[2\]\.capability: duplicate capability "a.b"/,
      );
    }
    expect(cardViolations(undefined)).toEqual([{ path: "card", message: "card is required" }]);
    expect(() =>
      validateTool(create(ToolSchema, { name: "t.x", rateLimit: { perSecond: 3, burst: 0 } })),
    ).toThrow(/burst/);
  });
});

describe("leases", () => {
  it("default to 15s and clamp to [5s, 60s]", () => {
    expect(leaseTtlMs(undefined)).toBe(15_000);
    expect(leaseTtlMs(0)).toBe(15_000);
    expect(leaseTtlMs(durationFromMs(1000))).toBe(5_000);
    expect(leaseTtlMs(durationFromMs(20_000))).toBe(20_000);
    expect(leaseTtlMs(3_600_000)).toBe(60_000);
    expect(leaseTtlMs(Number.NaN)).toBe(15_000);
    expect(heartbeatIntervalMs(15_000)).toBe(5_000);
  });
});

describe("agents at a point in time", () => {
  it("selects expired agents for the sweeper", () => {
    const agents = [
      agent("live"),
      agent("late", { leaseExpiresAt: timestampFromMs(5_000) }),
      agent("draining", { state: AgentState.DRAINING, leaseExpiresAt: timestampFromMs(5_000) }),
      agent("gone", { state: AgentState.DEREGISTERED, leaseExpiresAt: timestampFromMs(1) }),
    ];
    expect(expiredAgents(agents, 5_000).map((a) => a.agentId)).toEqual(["late", "draining"]);
    expect(expiredAgents(agents, 4_999)).toEqual([]);
  });

  it("orders candidates by reliability, then in-flight, then latest heartbeat", () => {
    const agents = [
      agent("a", { reliability: { "text.summarize": 0.7 }, inFlight: 3 }),
      agent("b", { reliability: { "text.summarize": 0.9 }, inFlight: 9 }),
      agent("c", { reliability: { "text.summarize": 0.7 }, inFlight: 1 }),
      agent("d", {
        reliability: { "text.summarize": 0.7 },
        inFlight: 1,
        lastHeartbeatAt: timestampFromMs(2_000),
      }),
      agent("e"), // unscored: 0.5
      agent("f", { reliability: { "text.summarize": 1 }, state: AgentState.DRAINING }),
      agent("g", { reliability: { "text.summarize": 1 }, leaseExpiresAt: timestampFromMs(100) }),
      agent("h", { card: card({ skills: [create(SkillSchema, { capability: "util.echo" })] }) }),
    ];
    expect(rankCandidates(agents, "text.summarize", 1_000).map((a) => a.agentId)).toEqual([
      "b",
      "d",
      "c",
      "a",
      "e",
    ]);
    expect(rankCandidates(agents, "text.summarize", 1_000, 2).map((a) => a.agentId)).toEqual([
      "b",
      "d",
    ]);
    expect([...liveCapabilities(agents, 1_000)].sort()).toEqual(["text.summarize", "util.echo"]);
  });

  it("derives watch events and filters them by capability", () => {
    const a = agent("a");
    expect(agentChange(undefined, a, 1)?.kind).toBe(AgentChangeKind.REGISTERED);
    // A heartbeat that only renews the lease is not an event.
    expect(
      agentChange(a, { ...a, leaseExpiresAt: timestampFromMs(20_000), inFlight: 2 }, 2),
    ).toBeUndefined();
    expect(agentChange(a, { ...a, state: AgentState.DRAINING }, 3)?.kind).toBe(
      AgentChangeKind.UPDATED,
    );
    expect(agentChange(a, { ...a, reliability: { "text.summarize": 0.8 } }, 3)?.kind).toBe(
      AgentChangeKind.UPDATED,
    );
    expect(agentChange(a, { ...a, card: card({ version: "2.0.0" }) }, 3)?.kind).toBe(
      AgentChangeKind.UPDATED,
    );
    const expired = { ...a, state: AgentState.EXPIRED };
    expect(agentChange(a, expired, 4)?.kind).toBe(AgentChangeKind.EXPIRED);
    expect(agentChange(a, { ...a, state: AgentState.DEREGISTERED }, 4)?.kind).toBe(
      AgentChangeKind.DEREGISTERED,
    );
    expect(agentChange(expired, a, 5)?.kind).toBe(AgentChangeKind.REGISTERED);
    const change = agentChange(undefined, a, 1)!;
    expect(watchMatches(change, "")).toBe(true);
    expect(watchMatches(change, "text.summarize")).toBe(true);
    expect(watchMatches(change, "util.echo")).toBe(false);
    const snap = watchSnapshot(
      [a, expired, agent("x", { leaseExpiresAt: timestampFromMs(1) })],
      "",
      1_000,
    );
    expect(snap.map((s) => [s.kind, s.agent?.agentId])).toEqual([[AgentChangeKind.SNAPSHOT, "a"]]);
  });
});
