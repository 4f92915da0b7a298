import { describe, expect, it } from "vitest";
import { bucketKey, parseBucketKey, sizeClassOf } from "./context-bucket.js";
import type { FeatureFlag } from "./feature-flags.js";
import {
  CANARY_FRACTION_FLAG,
  resolveCanaryFraction,
  resolveFlag,
  SELECTOR_FLAG,
} from "./feature-flags.js";

describe("context buckets", () => {
  it("keys a bucket readably and round-trips awkward values", () => {
    expect(bucketKey({ tenantId: "acme", goalKind: "summarize", sizeClass: "m" })).toBe(
      "tenant=acme/kind=summarize/size=m",
    );
    const key = bucketKey({ tenantId: "a/b=c", goalKind: "k ind", sizeClass: "l" });
    expect(parseBucketKey(key)).toEqual({ tenantId: "a/b=c", goalKind: "k ind", sizeClass: "l" });
    expect(parseBucketKey("nonsense")).toBeUndefined();
  });

  it("derives the size class from the text when none is given", () => {
    expect(sizeClassOf("short")).toBe("s");
    expect(sizeClassOf("x".repeat(1000))).toBe("m");
    expect(sizeClassOf("x".repeat(10_000))).toBe("l");
    expect(bucketKey({ tenantId: "t", goalKind: "k", sizeClass: "", text: "x".repeat(1000) })).toBe(
      "tenant=t/kind=k/size=m",
    );
  });
});

describe("feature flags", () => {
  const flags: FeatureFlag[] = [
    { key: SELECTOR_FLAG, value: "kind-only", goalKind: "summarize" },
    { key: SELECTOR_FLAG, value: "global" },
    { key: SELECTOR_FLAG, value: "both", tenantId: "acme", goalKind: "summarize" },
    { key: SELECTOR_FLAG, value: "tenant-only", tenantId: "acme" },
    { key: "other", value: "x", tenantId: "acme", goalKind: "summarize" },
  ];

  it("lets the most specific flag win regardless of order", () => {
    const at = (tenantId: string, goalKind: string) =>
      resolveFlag(flags, SELECTOR_FLAG, { tenantId, goalKind })?.value;
    expect(at("acme", "summarize")).toBe("both");
    expect(at("acme", "translate")).toBe("tenant-only");
    expect(at("globex", "summarize")).toBe("kind-only");
    expect(at("globex", "translate")).toBe("global");
    expect(at("acme", "summarize")).toBe(
      resolveFlag([...flags].reverse(), SELECTOR_FLAG, { tenantId: "acme", goalKind: "summarize" })
        ?.value,
    );
    expect(resolveFlag(flags, "missing", {})).toBeUndefined();
  });

  it("treats empty scope fields as wildcards and ties as first-wins", () => {
    const f: FeatureFlag[] = [
      { key: "k", value: "first", tenantId: "", goalKind: "" },
      { key: "k", value: "second" },
    ];
    expect(resolveFlag(f, "k", { tenantId: "x" })?.value).toBe("first");
  });

  it("reads the canary fraction, ignoring values that are not a fraction", () => {
    const f = (value: string): FeatureFlag[] => [{ key: CANARY_FRACTION_FLAG, value }];
    expect(resolveCanaryFraction(f("0.25"), {})).toBe(0.25);
    expect(resolveCanaryFraction(f("1.5"), {})).toBe(0.1);
    expect(resolveCanaryFraction(f("abc"), {})).toBe(0.1);
    expect(resolveCanaryFraction(f(""), {}, 0.05)).toBe(0.05);
    expect(resolveCanaryFraction([], {})).toBe(0.1);
  });
});
