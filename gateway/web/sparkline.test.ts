import { describe, expect, it } from "vitest";
import { points } from "./sparkline.js";

describe("sparkline", () => {
  it("scales to the box with 0 at the bottom", () => {
    expect(points([0, 2, 1], 80, 20)).toBe("0.0,19.0 40.0,1.0 80.0,10.0");
    expect(points([], 80, 20)).toBe("");
  });
});
