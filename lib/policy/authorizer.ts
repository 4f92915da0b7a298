/**
 * The `Authorizer` the RPC spine and the gateway call on every request,
 * backed by the policy engine: build the input from the descriptor and the
 * request, decide (cached where possible), and write denials and a sample of
 * allows to the decision log.
 *
 * @example
 * const engine = await openPolicyEngine({ wasmPath: config.policyPath });
 * const authorize = createPolicyAuthorizer(engine, {
 *   decisionLog: createDecisionLog({ destination: "decisions.log" }),
 * });
 * const { allow, reason } = await authorize({ peer, principal, method, request });
 */
import type { AuthorizationRequest, Authorizer, Decision } from "../rpc/authorizer.js";
import type { DecisionLog, RecordOptions } from "./decision-log.js";
import type { EngineDecision, PolicyEngine } from "./engine.js";
import { buildFromPlan, buildPolicyInput, methodPlan, type PolicyInput } from "./input.js";

/**
 * Told of each decision with the input the policy read (built once per call,
 * for the policy). Must not throw, nor change `input`.
 */
export type DecisionObserver = (input: PolicyInput, decision: Decision) => void;

export interface PolicyAuthorizerOptions {
  /** Where decisions are written; default none. */
  decisionLog?: DecisionLog;
  /** Use the decision cache. Default true. */
  cache?: boolean;
  /** Clock for `input.time` (tests). Default `Date.now`. */
  now?: () => number;
  /** Who decides, on every decision-log line: `{ component: "executor", instance: "executor-host-42" }`. */
  labels?: Record<string, string>;
  /** Also told of every decision, after the decision log (see `observeDecisions`). */
  onDecision?: DecisionObserver;
}

/** An `Authorizer` backed by the policy engine; `observedBy` gives one that also tells an observer. */
export interface PolicyAuthorizer extends Authorizer {
  /** The same authorizer (engine, log, labels), also telling `observer` of each decision it makes. */
  observedBy(observer: DecisionObserver): PolicyAuthorizer;
}

/** An `Authorizer` that asks `engine`; it never throws (any failure is a denial). */
export function createPolicyAuthorizer(
  engine: PolicyEngine,
  options: PolicyAuthorizerOptions = {},
): PolicyAuthorizer {
  const { decisionLog, cache = true, now = Date.now, labels, onDecision } = options;
  const authorize = (request: AuthorizationRequest): Decision => {
    const start = decisionLog ? process.hrtime.bigint() : 0n;
    let input: ReturnType<typeof buildFromPlan>;
    try {
      input = buildFromPlan(methodPlan(request.method), request, now());
    } catch {
      return {
        allow: false,
        reason: "could not read the request for the policy",
        principalTrusted: false,
      };
    }
    const decision = engine.decide(input, cache);
    if (decisionLog) {
      decisionLog.record(input, decision, Number(process.hrtime.bigint() - start), labels);
    }
    onDecision?.(input, decision);
    // The engine's answer as is (a Decision plus revision and cached): no copy per call.
    return decision;
  };
  return Object.assign(authorize, {
    observedBy(observer: DecisionObserver): PolicyAuthorizer {
      const outer = onDecision;
      return createPolicyAuthorizer(engine, {
        ...options,
        onDecision: outer
          ? (input, decision) => {
              outer(input, decision);
              observer(input, decision);
            }
          : observer,
      });
    },
  });
}

/**
 * `authorizer`, also telling `observer` of each decision it makes with the
 * input the policy read (the gateway's recent decisions for the console). A
 * policy authorizer passes on the input it built for the policy; any other
 * authorizer's calls get the input built here, as the policy would read it.
 */
export function observeDecisions(authorizer: Authorizer, observer: DecisionObserver): Authorizer {
  if (isPolicyAuthorizer(authorizer)) return authorizer.observedBy(observer);
  return (request) => {
    const answer = authorizer(request);
    const tell = (decision: Decision) => {
      observer(buildPolicyInput(request), decision);
      return decision;
    };
    return answer instanceof Promise ? answer.then(tell) : tell(answer);
  };
}

function isPolicyAuthorizer(authorizer: Authorizer): authorizer is PolicyAuthorizer {
  return typeof (authorizer as Partial<PolicyAuthorizer>).observedBy === "function";
}

/**
 * A policy check for questions that are not calls (the dispatch action):
 * decides `input` and writes it to the decision log like a call's (with
 * `sampleDenials`, its "no" is sampled like an allow: see `RecordOptions`).
 */
export function createPolicyCheck(
  engine: PolicyEngine,
  options: Pick<PolicyAuthorizerOptions, "decisionLog" | "labels"> & RecordOptions = {},
): (input: PolicyInput) => EngineDecision {
  const { decisionLog, labels } = options;
  const how: RecordOptions = { sampleDenials: options.sampleDenials === true };
  return (input) => {
    const start = decisionLog ? process.hrtime.bigint() : 0n;
    const decision = engine.decide(input);
    decisionLog?.record(input, decision, Number(process.hrtime.bigint() - start), labels, how);
    return decision;
  };
}
