import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PolicyBundle, readPolicyBundle } from "./bundle.js";
import { builtinCorpus, checkCorpus, readRecordedInputs } from "./corpus.js";
import type { PolicyInput } from "./input.js";
import { committedBundlePath, meshMethods } from "./testing.js";

let bundle: PolicyBundle;
let dir: string;
beforeAll(async () => {
  bundle = await readPolicyBundle(committedBundlePath);
  dir = await mkdtemp(join(tmpdir(), "agentmesh-corpus-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("the reload corpus", () => {
  it("calls every method as every identity the data names, every granted capability, and the dispatch action", () => {
    const corpus = builtinCorpus(bundle.data) as PolicyInput[];
    const methods = new Set(corpus.map((i) => i.method?.full));
    for (const m of meshMethods) expect(methods).toContain(`${m.parent.typeName}/${m.name}`);
    expect(methods).toContain("agentmesh.v1.ExecutorService/DispatchStep");
    const peers = new Set(corpus.map((i) => i.peer?.name));
    for (const name of [
      "executor",
      "gateway",
      "cli",
      "agent-text",
      "agent-mcp-corpus",
      "intruder",
    ]) {
      expect(peers).toContain(name);
    }
    const roles = new Set(corpus.flatMap((i) => i.principal?.roles ?? []));
    expect(roles).toEqual(
      new Set(["platform.admin", "tenant.admin", "capabilities.run", "goals.write", "goals.read"]),
    );
    const dispatched = corpus
      .filter((i) => i.method?.kind === "action")
      .map((i) => i.resource.capability);
    expect(dispatched).toEqual(expect.arrayContaining(["shell.exec", "text.corpus", "http.fetch"]));
    // The committed bundle answers all of it.
    expect(checkCorpus(bundle, corpus)).toBe(corpus.length);
  });

  it("names the input a bundle fails on", () => {
    const failing: PolicyBundle = {
      ...bundle,
      evaluate(input) {
        if ((input as PolicyInput).principal?.tenant_id === "acme")
          throw "x.rego:3:1: var assignment conflict";
        return bundle.evaluate(input);
      },
    };
    expect(() => checkCorpus(failing, builtinCorpus(bundle.data))).toThrow(
      /^invalid policy bundle: policy fails to evaluate: x\.rego:3:1: var assignment conflict \(on agentmesh\.v1\.\S+ by spiffe:\/\/agentmesh\.local\/ns\/agentmesh\/sa\/gateway for acme\/corpus\)$/,
    );
    const malformed: PolicyBundle = { ...bundle, evaluate: () => ({ allow: "yes" }) };
    expect(() => checkCorpus(malformed, [{}])).toThrow(
      'invalid policy bundle: policy answers {"allow":"yes"}; expected {allow, reason, principal_trusted} (on an empty input)',
    );
  });

  it("reads recorded inputs from the tail of a decision log, skipping what is not a line of it", async () => {
    const path = join(dir, "decisions.log");
    const line = (n: number) => JSON.stringify({ decision_id: `${n}`, input: { n } });
    await writeFile(
      path,
      [line(1), "not json", line(2), JSON.stringify({ no: "input" }), line(3), ""].join("\n"),
    );
    expect(await readRecordedInputs(path)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(await readRecordedInputs(path, { max: 2 })).toEqual([{ n: 2 }, { n: 3 }]);
    // Only the tail is read; a line cut at its start is dropped.
    expect(await readRecordedInputs(path, { maxBytes: line(3).length + 2 })).toEqual([{ n: 3 }]);
    expect(await readRecordedInputs(join(dir, "missing.log"))).toEqual([]);
  });
});
