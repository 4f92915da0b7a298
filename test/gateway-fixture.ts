/**
 * One gateway for a test file, in front of the real mesh: registry, planner,
 * executor and learning on real mTLS with the committed policy, a private
 * PostgreSQL schema and NATS JetStream prefix (`test/support/mesh.ts`), the
 * built-in util, text and data agents registered over mTLS, tenants and API
 * keys in the store, and the gateway on a free loopback port wired as
 * `agentmesh dev` wires it.
 *
 * Goals of kind `diamond` (a tenant playbook of acme and globex) run a
 * diamond DAG — plan → fetch, analyze → report — whose first three steps
 * sleep `stepMs` on the util agent, so a test chooses how long a goal runs.
 */

import { createDataAgent } from "../agents/data.js";
import { textAgent } from "../agents/text.js";
import { utilAgent } from "../agents/util.js";
import {
  type Gateway,
  type GatewayOptions,
  meshGatewayOptions,
  startGateway,
} from "../gateway/start-gateway.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { createLogger } from "../lib/log/logger.js";
import { newApiKey } from "../lib/store/api-key-secret.js";
import type { Store } from "../lib/store/store.js";
import { startTestMesh, type TestMesh } from "../lib/testing/mesh.js";

/** The goal kind the fixture's tenants can run. */
export const diamondKind = "diamond";
/** Its steps, by id, with the capability each needs. */
export const diamondSteps = {
  plan: "util.sleep",
  fetch: "util.sleep",
  analyze: "util.sleep",
  report: "util.echo",
} as const;

export interface GatewayFixture {
  gateway: Gateway;
  url: string;
  store: Store;
  mesh: TestMesh;
  /** API keys by name: admin (ops, platform.admin), acmeAdmin, acmeWriter, acmeReader, globexWriter. */
  keys: Record<"admin" | "acmeAdmin" | "acmeWriter" | "acmeReader" | "globexWriter", string>;
  /** Makes another key. */
  key(tenantId: string, roles: string[], expiresAt?: Date): Promise<string>;
  close(): Promise<void>;
}

export interface GatewayFixtureOptions extends Partial<GatewayOptions> {
  databaseUrl: string;
  natsUrl: string;
  /** How long each sleeping step of a `diamond` goal takes. Default 40 ms. */
  stepMs?: number;
  /** Extra environment of the mesh's config (e.g. `AGENTMESH_POLICY`). */
  meshEnv?: Record<string, string>;
}

export async function startGatewayFixture(options: GatewayFixtureOptions): Promise<GatewayFixture> {
  const { databaseUrl, natsUrl, stepMs = 40, meshEnv, ...gatewayOptions } = options;
  const mesh = await startTestMesh({
    databaseUrl,
    natsUrl,
    ...(meshEnv ? { env: meshEnv } : {}),
    agents: [
      { definition: utilAgent },
      { definition: textAgent },
      { definition: createDataAgent() },
    ],
  });
  try {
    const { runtime } = mesh;
    const store = runtime.store;
    // startTestMesh made acme.
    for (const id of ["ops", "globex"]) await store.tenants.create({ id, displayName: id });
    const planner = await mesh.clientAs(PlannerService, "planner", "cli");
    for (const tenantId of ["acme", "globex"]) {
      await planner.putPlaybook({ tenantId, playbook: diamondPlaybook(stepMs) });
    }
    const key = async (tenantId: string, roles: string[], expiresAt?: Date) => {
      const k = newApiKey();
      await store.tenant(tenantId).apiKeys.create({
        keyId: k.keyId,
        secretHash: k.secretHash,
        name: roles.join("+"),
        roles,
        ...(expiresAt ? { expiresAt } : {}),
      });
      return k.secret;
    };
    const keys = {
      admin: await key("ops", ["platform.admin"]),
      acmeAdmin: await key("acme", ["tenant.admin"]),
      acmeWriter: await key("acme", ["goals.write"]),
      acmeReader: await key("acme", ["goals.read"]),
      globexWriter: await key("globex", ["goals.write"]),
    };
    const gateway = await startGateway({
      ...(await meshGatewayOptions(runtime)),
      port: 0,
      log: createLogger({ name: "gateway", level: process.env.LOG_LEVEL ?? "silent" }),
      ...gatewayOptions,
    });
    return {
      gateway,
      url: gateway.url,
      store,
      mesh,
      keys,
      key,
      async close() {
        await gateway.close();
        await mesh.stop();
      },
    };
  } catch (err) {
    await mesh.stop();
    throw err;
  }
}

/** The `diamond` playbook: three sleeping steps of `stepMs` in a diamond, then an echo. */
function diamondPlaybook(stepMs: number) {
  const sleep = (stepId: string, dependsOn: string[]) => ({
    stepId,
    name: stepId,
    capability: diamondSteps.plan,
    input: { ms: stepMs },
    dependsOn,
    // Long sleeps (held-open streams in the limits test) must not time out.
    timeout: { seconds: BigInt(Math.ceil(stepMs / 1000) + 30) },
  });
  return {
    goalKind: diamondKind,
    description: "a diamond of sleeps, for the gateway tests",
    strategies: [
      {
        name: "diamond",
        outputStep: "report",
        steps: [
          sleep("plan", []),
          sleep("fetch", ["plan"]),
          sleep("analyze", ["plan"]),
          {
            stepId: "report",
            name: "report",
            capability: diamondSteps.report,
            input: { message: "report done" },
            dependsOn: ["fetch", "analyze"],
          },
        ],
      },
    ],
  };
}
