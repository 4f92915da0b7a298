/**
 * JSON Schema validation of skill inputs and outputs with ajv. Schemas are
 * compiled once per skill at start-up; a check then costs microseconds.
 * `$schema` is ignored so draft-07 and 2020-12 schemas (MCP servers send both)
 * compile alike; unknown keywords are allowed, formats are checked.
 */
import { Ajv, type ErrorObject } from "ajv";
import type { FormatsPlugin } from "ajv-formats";
import * as formatsModule from "ajv-formats";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { JsonSchema } from "./define-agent.js";

/** One failed check, in the caller-safe shape step results carry. */
export interface SchemaViolation {
  /** JSON Pointer to the offending value, `""` for the root. */
  path: string;
  message: string;
  keyword: string;
}

export type Validator = (value: unknown) => SchemaViolation[];

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const formats = formatsModule as unknown as { default: FormatsPlugin | { default: FormatsPlugin } };
const addFormats: FormatsPlugin =
  typeof formats.default === "function" ? formats.default : formats.default.default;

const ajv = new Ajv({ allErrors: true, strict: false, coerceTypes: false, useDefaults: true });
addFormats(ajv);

/** Compiles a schema; throws INVALID_ARGUMENT if it is not a valid JSON Schema. */
export function compileSchema(schema: JsonSchema | undefined, what: string): Validator {
  if (schema === undefined || Object.keys(schema).length === 0) return () => [];
  const { $schema: _ignored, ...rest } = schema;
  let validate: ReturnType<Ajv["compile"]>;
  try {
    validate = ajv.compile(rest);
  } catch (err) {
    throw new MeshError(Code.InvalidArgument, `${what}: invalid JSON Schema: ${String(err)}`, {
      cause: err,
    });
  }
  return (value) => (validate(value) ? [] : (validate.errors ?? []).slice(0, 20).map(violation));
}

function violation(e: ErrorObject): SchemaViolation {
  return { path: e.instancePath, message: e.message ?? "is invalid", keyword: e.keyword };
}
