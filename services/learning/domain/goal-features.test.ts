import { describe, expect, it } from "vitest";
import { contextKey, goalFeatures, inputShape, MAX_SHAPE_BYTES } from "./goal-features.js";

describe("goalFeatures", () => {
  const ctx = { tenantId: "acme", goalKind: "extract", sizeClass: "" };

  it("keys a goal by tenant, kind, size bucket and input shape", () => {
    const f = goalFeatures({ ...ctx, text: '{"url": "a", "lang": "de"}' });
    expect(f).toMatchObject({ tenant: "acme", kind: "extract", size: "s" });
    expect(f.shape).toMatch(/^obj-[0-9a-f]{8}$/);
    expect(contextKey(f)).toBe(`tenant=acme/kind=extract/size=s/shape=${f.shape}`);
    expect(goalFeatures({ ...ctx, sizeClass: "l", text: "x" }).size).toBe("l");
    expect(goalFeatures({ ...ctx, text: "y".repeat(5000) }).size).toBe("l");
  });

  it("gives one shape to objects with the same top-level keys, whatever their values or order", () => {
    const a = inputShape('{"url": "https://a", "lang": "de"}');
    expect(inputShape('{"lang": "fr", "url": {"nested": [1, 2]}}')).toBe(a);
    expect(inputShape('{"url": "https://a"}')).not.toBe(a);
  });

  it("names non-object inputs, and does not parse hostile ones", () => {
    expect(inputShape(undefined)).toBe("empty");
    expect(inputShape("  ")).toBe("empty");
    expect(inputShape("summarize this")).toBe("text");
    expect(inputShape("{not json")).toBe("text");
    expect(inputShape("[1, 2]")).toBe("array");
    expect(inputShape(`{"a": "${"z".repeat(MAX_SHAPE_BYTES)}"}`)).toBe("text");
  });

  it("keeps keys unambiguous when values contain separators", () => {
    const k1 = contextKey({ tenant: "a/kind=b", kind: "c", size: "s", shape: "text" });
    const k2 = contextKey({ tenant: "a", kind: "b/kind=c", size: "s", shape: "text" });
    expect(k1).not.toBe(k2);
  });
});
