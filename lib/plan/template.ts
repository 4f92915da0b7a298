/**
 * Input templates of plan steps (the contract in `planner.proto`, `Step.input`).
 *
 * A string value may hold `${input.<path>}` (a field of the goal's input) or
 * `${steps.<id>.output.<path>}` (a field of an earlier step's output). A string
 * that is exactly one template keeps the referenced value's type; templates
 * embedded in longer text are stringified (objects as JSON). `$${` writes a
 * literal `${`. Path segments are keys or array indexes.
 *
 * The planner resolves `input` references when it makes a plan and leaves step
 * references for the executor, which resolves them at dispatch; both use this
 * module, so it lives in `lib/` rather than in either service.
 *
 * @example
 * resolveTemplates(
 *   { text: "${steps.fetch.output.body}", title: "About ${input.topic}" },
 *   { input: { topic: "cats" }, steps: { fetch: { body: "..." } } },
 * ); // → { text: "...", title: "About cats" }
 */
import type { JsonValue } from "@bufbuild/protobuf";
import { Code, MeshError } from "../errors/mesh-error.js";

/** One `${...}` reference. */
export type TemplateRef =
  | { readonly source: "input"; readonly path: readonly string[]; readonly text: string }
  | {
      readonly source: "step";
      readonly stepId: string;
      readonly path: readonly string[];
      readonly text: string;
    };

/** A template string split into literal text and references. */
export type TemplatePart = string | TemplateRef;

/** What templates may read. */
export interface TemplateContext {
  /** The goal's input. */
  input?: JsonValue | undefined;
  /** Outputs of finished steps by step id. */
  steps?: Readonly<Record<string, JsonValue>> | undefined;
}

export interface ResolveOptions {
  /**
   * Leave `${steps...}` references whose step has no output in the context
   * untouched instead of failing (the planner resolves only `input`).
   * Default false.
   */
  keepUnresolvedSteps?: boolean;
}

const segmentPattern = /^[A-Za-z0-9_-]+$/;

/**
 * Splits a string into literal parts and references. Throws INVALID_ARGUMENT
 * for a malformed template (unclosed, empty, unknown root, bad segment).
 */
export function parseTemplate(text: string): readonly TemplatePart[] {
  // Plans repeat the same few template strings on every dispatch: parse once.
  const hit = parsed.get(text);
  if (hit !== undefined) return hit;
  const parts = parseUncached(text);
  if (parsed.size >= maxParsed) parsed.delete(parsed.keys().next().value!);
  parsed.set(text, parts);
  return parts;
}

const maxParsed = 2048;
const parsed = new Map<string, readonly TemplatePart[]>();

function parseUncached(text: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let literal = "";
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf("$", i);
    if (dollar < 0) {
      literal += text.slice(i);
      break;
    }
    literal += text.slice(i, dollar);
    if (text.startsWith("$${", dollar)) {
      literal += "${";
      i = dollar + 3;
      continue;
    }
    if (text[dollar + 1] !== "{") {
      literal += "$";
      i = dollar + 1;
      continue;
    }
    const close = text.indexOf("}", dollar + 2);
    if (close < 0) {
      throw templateError(`unclosed template in "${text}"`);
    }
    if (literal !== "") parts.push(literal);
    literal = "";
    parts.push(parseReference(text.slice(dollar + 2, close).trim(), text.slice(dollar, close + 1)));
    i = close + 1;
  }
  if (literal !== "" || parts.length === 0) parts.push(literal);
  return parts;
}

function parseReference(expression: string, text: string): TemplateRef {
  const segments = expression.split(".");
  for (const segment of segments) {
    if (!segmentPattern.test(segment)) {
      throw templateError(
        `bad template ${text}: path segments are letters, digits, "_" or "-" separated by "."`,
      );
    }
  }
  if (segments[0] === "input") {
    return { source: "input", path: segments.slice(1), text };
  }
  if (segments[0] === "steps") {
    if (segments.length < 3 || segments[2] !== "output") {
      throw templateError(`bad template ${text}: expected \${steps.<id>.output[.path]}`);
    }
    return { source: "step", stepId: segments[1]!, path: segments.slice(3), text };
  }
  throw templateError(`bad template ${text}: must start with "input." or "steps."`);
}

/** Whether a string contains a template (cheap pre-check for hot paths). */
export function hasTemplate(text: string): boolean {
  return text.includes("${");
}

/**
 * Every reference in a JSON value, with the JSON path of the string holding
 * it. A malformed template throws, unless `onError` is given: then it is
 * reported there and the other strings are still read.
 */
export function templateRefs(
  value: unknown,
  onError?: (at: string, err: MeshError) => void,
): Array<{ at: string; ref: TemplateRef }> {
  const found: Array<{ at: string; ref: TemplateRef }> = [];
  walkStrings(value, "", (text, path) => {
    if (!hasTemplate(text)) return;
    let parts: readonly TemplatePart[];
    try {
      parts = parseTemplate(text);
    } catch (err) {
      if (onError === undefined) throw err;
      onError(path, err as MeshError);
      return;
    }
    for (const part of parts) {
      if (typeof part !== "string") found.push({ at: path, ref: part });
    }
  });
  return found;
}

function walkStrings(value: unknown, at: string, visit: (text: string, at: string) => void): void {
  if (typeof value === "string") visit(value, at);
  else if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) walkStrings(v, `${at}[${i}]`, visit);
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) walkStrings(v, at === "" ? k : `${at}.${k}`, visit);
  }
}

/**
 * Resolves every template in `value`. An exact template whose value is missing
 * drops its object key (or becomes null in an array), so optional inputs stay
 * optional; a missing value inside longer text is INVALID_ARGUMENT.
 */
export function resolveTemplates(
  value: JsonValue,
  context: TemplateContext,
  options: ResolveOptions = {},
): JsonValue {
  const resolved = resolveValue(value, context, options);
  return resolved === undefined ? null : resolved;
}

function resolveValue(
  value: JsonValue,
  context: TemplateContext,
  options: ResolveOptions,
): JsonValue | undefined {
  if (typeof value === "string") return resolveString(value, context, options);
  if (Array.isArray(value)) {
    return value.map((v) => {
      const r = resolveValue(v, context, options);
      return r === undefined ? null : r;
    });
  }
  if (value !== null && typeof value === "object") {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(value)) {
      const r = resolveValue(v, context, options);
      if (r !== undefined) out[k] = r;
    }
    return out;
  }
  return value;
}

const unresolvedRef = Symbol("unresolved");

function resolveString(
  text: string,
  context: TemplateContext,
  options: ResolveOptions,
): JsonValue | undefined {
  if (!text.includes("$")) return text;
  const parts = parseTemplate(text);
  // A partial (planner) pass must leave text that a later pass reads the same.
  const escapeText = (literal: string) =>
    options.keepUnresolvedSteps ? literal.replaceAll("${", () => "$${") : literal;
  if (parts.length === 1) {
    const only = parts[0]!;
    if (typeof only === "string") return escapeText(only);
    const v = lookup(only, context, options);
    if (v === unresolvedRef) return text;
    return options.keepUnresolvedSteps && v !== undefined ? escapeDeep(v) : v;
  }
  let out = "";
  for (const part of parts) {
    if (typeof part === "string") {
      out += escapeText(part);
      continue;
    }
    const v = lookup(part, context, options);
    if (v === unresolvedRef) out += part.text;
    else if (v === undefined) {
      throw templateError(`template ${part.text} refers to a missing value`);
    } else out += escapeText(typeof v === "string" ? v : JSON.stringify(v));
  }
  return out;
}

function lookup(
  ref: TemplateRef,
  context: TemplateContext,
  options: ResolveOptions,
): JsonValue | undefined | typeof unresolvedRef {
  let root: JsonValue | undefined;
  if (ref.source === "input") root = context.input;
  else {
    const steps = context.steps;
    if (steps === undefined || !Object.hasOwn(steps, ref.stepId)) {
      if (options.keepUnresolvedSteps) return unresolvedRef;
      throw templateError(
        `template ${ref.text} refers to step "${ref.stepId}" which has no output`,
      );
    }
    root = steps[ref.stepId];
  }
  return getPath(root, ref.path);
}

/**
 * Escapes every "${" in the strings of a value, so values substituted by a
 * partial pass are never read as templates by the next one (and a literal
 * value put into a step's input stays literal through both passes).
 */
export function escapeDeep(value: JsonValue): JsonValue {
  // A function replacer: in a replacement string "$$" would collapse to "$".
  if (typeof value === "string") return value.replaceAll("${", () => "$${");
  if (Array.isArray(value)) return value.map(escapeDeep);
  if (value !== null && typeof value === "object") {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(value)) out[k] = escapeDeep(v);
    return out;
  }
  return value;
}

/** Reads a path of keys / array indexes; undefined when any segment is missing. */
export function getPath(
  root: JsonValue | undefined,
  path: readonly string[],
): JsonValue | undefined {
  let current: JsonValue | undefined = root;
  for (const segment of path) {
    if (Array.isArray(current)) {
      const index = Number(segment);
      if (!Number.isInteger(index) || index < 0 || index >= current.length) return undefined;
      current = current[index];
    } else if (current !== null && typeof current === "object") {
      if (!Object.hasOwn(current, segment)) return undefined;
      current = current[segment];
    } else return undefined;
  }
  return current;
}

function templateError(message: string): MeshError {
  return new MeshError(Code.InvalidArgument, message, { retryable: false });
}
