/**
 * JSON Schema checks with Ajv: whether a schema in a playbook (or an agent
 * card) compiles, and whether a goal's input satisfies its playbook's schema.
 * Compiled validators are cached by the schema's JSON, so checking a goal
 * costs microseconds after the first.
 *
 * @example
 * validateGoalInput(playbook, { text: "hi" }); // throws INVALID_ARGUMENT with Ajv's errors
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { Playbook } from "../../../gen/agentmesh/v1/planner_pb.js";
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";

/** One failed schema check, as sent to callers. */
export interface SchemaError {
  /** JSON Pointer into the checked value, "" for the root. */
  path: string;
  message: string;
}

const maxCached = 512;
const cache = new Map<string, ValidateFunction>();

function newAjv(): Ajv {
  // Formats ("email", "uri") are not validated: ajv-formats is not a dependency,
  // and an unknown format must not make a schema unusable.
  return new Ajv({ allErrors: true, strict: false, validateFormats: false });
}

const shared = newAjv();

/**
 * Compiles a schema (cached). Throws INVALID_ARGUMENT naming what is wrong when
 * the schema is not a valid JSON Schema.
 */
export function compileSchema(schema: JsonObject): ValidateFunction {
  const key = JSON.stringify(schema);
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  // A schema with an $id may be registered once per Ajv instance; give it its own.
  const ajv = "$id" in schema ? newAjv() : shared;
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (err) {
    throw new MeshError(Code.InvalidArgument, `invalid JSON Schema: ${(err as Error).message}`, {
      retryable: false,
    });
  }
  if (cache.size >= maxCached) cache.delete(cache.keys().next().value!);
  cache.set(key, validate);
  return validate;
}

/** Why `schema` is not a usable JSON Schema, or undefined when it is. */
export function schemaProblem(schema: JsonObject | undefined): string | undefined {
  if (schema === undefined || Object.keys(schema).length === 0) return undefined;
  try {
    compileSchema(schema);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Ajv's errors for `value` against `schema`; empty when it conforms. */
export function schemaErrors(schema: JsonObject | undefined, value: JsonValue): SchemaError[] {
  if (schema === undefined || Object.keys(schema).length === 0) return [];
  const validate = compileSchema(schema);
  if (validate(value)) return [];
  return (validate.errors ?? []).map(toSchemaError);
}

function toSchemaError(e: ErrorObject): SchemaError {
  const extra =
    e.keyword === "additionalProperties"
      ? ` ("${(e.params as { additionalProperty: string }).additionalProperty}")`
      : "";
  return { path: e.instancePath, message: `${e.message ?? e.keyword}${extra}` };
}

/**
 * Checks a goal's input against its playbook's input schema. Throws
 * INVALID_ARGUMENT with the schema errors in `details.errors`.
 */
export function validateGoalInput(playbook: Playbook, input: JsonObject | undefined): void {
  const errors = schemaErrors(playbook.inputSchema, input ?? {});
  if (errors.length === 0) return;
  const summary = errors.map((e) => `${e.path || "input"} ${e.message}`).join("; ");
  throw new MeshError(
    Code.InvalidArgument,
    `input of goal kind "${playbook.goalKind}" does not match its schema: ${summary}`,
    { details: { errors }, retryable: false },
  );
}
