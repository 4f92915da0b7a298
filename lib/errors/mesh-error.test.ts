import { describe, expect, it } from "vitest";
import { Code, codeName, isMeshError, MeshError } from "./mesh-error.js";

describe("MeshError", () => {
  it("passes a MeshError through from()", () => {
    const err = new MeshError(Code.NotFound, "goal g1 not found");
    expect(MeshError.from(err)).toBe(err);
  });

  it("keeps the code of gRPC-shaped errors", () => {
    const err = MeshError.from({ code: 14, details: "connection refused" });
    expect(err.code).toBe(Code.Unavailable);
    expect(err.message).toBe("connection refused");
    expect(err.retryable).toBe(true);
  });

  it("hides the message of unknown errors behind INTERNAL", () => {
    const cause = new Error("secret stack detail");
    const err = MeshError.from(cause);
    expect(err.code).toBe(Code.Internal);
    expect(err.message).toBe("internal error");
    expect(err.cause).toBe(cause);
    expect(err.retryable).toBe(false);
  });

  it("maps aborts to CANCELLED", () => {
    const abort = new DOMException("aborted", "AbortError");
    expect(MeshError.from(abort).code).toBe(Code.Canceled);
  });

  it("lets callers override retryability", () => {
    expect(new MeshError(Code.Unavailable, "x", { retryable: false }).retryable).toBe(false);
    expect(new MeshError(Code.Internal, "x", { retryable: true }).retryable).toBe(true);
  });

  it("names codes like gRPC tools do", () => {
    expect(codeName(Code.PermissionDenied)).toBe("PERMISSION_DENIED");
    expect(codeName(Code.Ok)).toBe("OK");
    expect(new MeshError(Code.ResourceExhausted, "x").codeName).toBe("RESOURCE_EXHAUSTED");
    expect(isMeshError(new MeshError(Code.Ok, "x"))).toBe(true);
    expect(isMeshError(new Error("x"))).toBe(false);
  });
});
