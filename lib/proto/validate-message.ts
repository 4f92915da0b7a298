/**
 * The contract's constraints, enforced: every request is checked against the
 * `buf.validate` rules declared in `proto/agentmesh/v1/*.proto` (names,
 * sizes, required fields) by protovalidate, generically from the message's
 * descriptor. The gateway and every service server run the same check, so a
 * rule lives in one place — the `.proto` file every generated SDK also sees.
 *
 * @example
 * checkMessage(SubmitGoalRequestSchema, request);
 * // throws INVALID_ARGUMENT "invalid agentmesh.v1.SubmitGoalRequest: kind: does not match regex …"
 */
import { create, type DescMessage, type Message } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator, type Validator } from "@bufbuild/protovalidate";
import { Code, MeshError } from "../errors/mesh-error.js";

/** One broken rule: the field path (`card.skills[0].capability`), the rule id, what is wrong. */
export interface FieldViolation {
  path: string;
  rule: string;
  message: string;
}

// One validator per process: it compiles each message type's rules once, on first use.
let validator: Validator | undefined;

/** Every violation of the contract's rules by `message`; empty when it is valid. */
export function messageViolations(schema: DescMessage, message: Message): FieldViolation[] {
  validator ??= createValidator();
  const result = validator.validate(schema, message);
  switch (result.kind) {
    case "valid":
      return [];
    case "invalid":
      return result.violations.map((v) => ({
        path: pathToString(v.field),
        rule: v.ruleId,
        message: v.message,
      }));
    default:
      // A rule that cannot be compiled or evaluated is our bug, not the caller's.
      throw new MeshError(Code.Internal, "request validation failed", { cause: result.error });
  }
}

/**
 * Compiles the rules of `schemas` in the background, one per event-loop turn.
 * A message type's first check compiles its rules, and the very first builds
 * protovalidate's CEL and RE2 machinery (a few hundred ms): servers call this
 * when they start listening so no early call with a short deadline pays it.
 */
export function warmValidation(schemas: readonly DescMessage[]): void {
  const pending = [...new Set(schemas)];
  const next = () => {
    const schema = pending.shift();
    if (schema === undefined) return;
    try {
      messageViolations(schema, create(schema));
    } catch {
      // A rule that fails to compile fails the call that needs it, where it is logged.
    }
    setImmediate(next).unref();
  };
  setImmediate(next).unref();
}

/** Throws INVALID_ARGUMENT naming each violated field unless `message` keeps the contract's rules. */
export function checkMessage(schema: DescMessage, message: Message): void {
  const violations = messageViolations(schema, message);
  if (violations.length === 0) return;
  const lines = violations.map((v) => `${v.path || "(message)"}: ${v.message}`);
  throw new MeshError(Code.InvalidArgument, `invalid ${schema.typeName}: ${lines.join("; ")}`, {
    retryable: false,
    details: { violations },
  });
}
