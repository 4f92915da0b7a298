/**
 * The program each JSONata sandbox process runs (`node -e <source> <jsonata path>`):
 * it evaluates one request at a time, sent over the IPC channel, and answers
 * with the result as JSON text or a plain-data failure. It is CommonJS source
 * text rather than a module file so it runs the same from the TypeScript
 * sources, the CLI's bundle and `dist/`.
 *
 * It exits when its parent goes away. A crash here (V8 aborts the process on
 * some allocation failures) or a kill at the deadline costs only this process.
 */
export const jsonataChildSource = `"use strict";
const jsonata = require(process.argv[1]);
process.on("disconnect", () => process.exit(0));
const failure = (kind, err) => ({
  kind,
  name: err && err.name,
  code: err && err.code,
  message: err && err.message ? String(err.message) : String(err),
  position: err && err.position,
  token: err && err.token,
  value: err && typeof err.value !== "object" ? err.value : undefined,
});
// Compiled expressions by text and limits (a playbook sends the same few again and again).
const compiled = new Map();
const compile = (job) => {
  const key = JSON.stringify([job.expression, job.timeLimitMs, job.maxDepth, job.maxSequence]);
  let expr = compiled.get(key);
  if (!expr) {
    expr = jsonata(job.expression, {
      timeout: job.timeLimitMs,
      stack: job.maxDepth,
      sequence: job.maxSequence,
    });
    if (compiled.size >= 200) compiled.delete(compiled.keys().next().value);
    compiled.set(key, expr);
  }
  return expr;
};
process.on("message", async (job) => {
  const reply = (m) => process.send(Object.assign(m, { id: job.id }));
  let expr;
  try {
    expr = compile(job);
  } catch (err) {
    return reply({ error: failure("compile", err) });
  }
  try {
    const result = await expr.evaluate(job.data, job.bindings);
    const json = JSON.stringify(result === undefined ? null : result);
    const bytes = Buffer.byteLength(json);
    if (bytes > job.maxBytes) return reply({ error: { kind: "size", bytes } });
    reply({ json });
  } catch (err) {
    reply({ error: failure("evaluate", err) });
  }
});
process.send({ ready: true });
`;
