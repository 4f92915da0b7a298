// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are step templates, not JS templates
import { describe, expect, it } from "vitest";
import { Code, isMeshError } from "../errors/mesh-error.js";
import { isCapabilityName } from "./capability.js";
import { parseTemplate, resolveTemplates, templateRefs } from "./template.js";

const context = {
  input: { text: "hello world", n: 3, tags: ["a", "b"], nested: { deep: { x: true } } },
  steps: { stats: { words: 2, list: [1, 2] }, empty: null },
};

describe("templates", () => {
  it("keeps the type of an exact template", () => {
    expect(resolveTemplates("${input.n}", context)).toBe(3);
    expect(resolveTemplates("${input.tags}", context)).toEqual(["a", "b"]);
    expect(resolveTemplates("${input.nested.deep.x}", context)).toBe(true);
    expect(resolveTemplates("${steps.stats.output}", context)).toEqual({ words: 2, list: [1, 2] });
    expect(resolveTemplates("${steps.stats.output.list.1}", context)).toBe(2);
    expect(resolveTemplates("${input.tags.0}", context)).toBe("a");
    expect(resolveTemplates("${steps.empty.output}", context)).toBeNull();
  });

  it("stringifies embedded templates", () => {
    expect(resolveTemplates("n=${input.n}; tags=${input.tags}", context)).toBe(
      'n=3; tags=["a","b"]',
    );
    expect(resolveTemplates("${input.text}!", context)).toBe("hello world!");
  });

  it("resolves deep inside objects and arrays, dropping missing exact values", () => {
    expect(
      resolveTemplates({ a: ["${input.n}", "${input.missing}"], b: "${input.missing}" }, context),
    ).toEqual({ a: [3, null] });
  });

  it("rejects a missing value inside text and a step without output", () => {
    expectInvalid(() => resolveTemplates("x ${input.missing}", context));
    expectInvalid(() => resolveTemplates("${steps.nope.output}", context));
  });

  it("leaves step references for a later pass and escapes what it substitutes", () => {
    const input = { text: "${steps.stats.output}", n: 3 };
    const partial = resolveTemplates(
      { t: "${input.text}", s: "${steps.stats.output.words}", e: "$${input.n} ${input.n}" },
      { input },
      { keepUnresolvedSteps: true },
    );
    expect(partial).toEqual({
      t: "$${steps.stats.output}",
      s: "${steps.stats.output.words}",
      e: "$${input.n} 3",
    });
    // The second pass neither interprets substituted input nor escaped literals.
    expect(resolveTemplates(partial, context)).toEqual({
      t: "${steps.stats.output}",
      s: 2,
      e: "${input.n} 3",
    });
  });

  it("parses references and reports malformed templates", () => {
    expect(parseTemplate("a ${input.x} b")).toEqual([
      "a ",
      { source: "input", path: ["x"], text: "${input.x}" },
      " b",
    ]);
    expect(templateRefs({ q: ["${steps.s1.output.a}"] })).toEqual([
      {
        at: "q[0]",
        ref: { source: "step", stepId: "s1", path: ["a"], text: "${steps.s1.output.a}" },
      },
    ]);
    for (const bad of [
      "${input",
      "${}",
      "${foo.bar}",
      "${steps.x}",
      "${steps.x.result}",
      "${input.a b}",
    ]) {
      expectInvalid(() => parseTemplate(bad));
    }
    expect(parseTemplate("costs $5")).toEqual(["costs $5"]);
  });
});

describe("capability names", () => {
  it("accepts lowercase dotted words only", () => {
    for (const ok of ["text.summarize", "util.echo", "mcp.everything.echo", "echo", "a1.b_c-d"]) {
      expect(isCapabilityName(ok), ok).toBe(true);
    }
    for (const bad of [
      "",
      "Text.summarize",
      "text..x",
      ".x",
      "x.",
      "text summarize",
      "x.*",
      "x.>",
      "1x",
    ]) {
      expect(isCapabilityName(bad), bad).toBe(false);
    }
    expect(isCapabilityName(`a.${"b".repeat(200)}`)).toBe(false);
  });
});

function expectInvalid(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(isMeshError(err)).toBe(true);
    expect((err as { code: Code }).code).toBe(Code.InvalidArgument);
    return;
  }
  throw new Error("expected INVALID_ARGUMENT");
}
