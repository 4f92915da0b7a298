/**
 * Hostile inputs for the fuzz suites, as fast-check arbitraries: random and
 * mutated protobuf, broken and pathological JSON, invalid UTF-8, gRPC
 * envelopes that lie about their length, wrong content types and absurd
 * deadlines. Plus how to judge an answer: a sensible code, never INTERNAL,
 * UNKNOWN or a 5xx for bad input.
 */

import { request as httpRequest } from "node:http";
import {
  type ClientHttp2Session,
  connect as h2connect,
  type SecureClientSessionOptions,
} from "node:http2";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import fc from "fast-check";

/** A gRPC / Connect-streaming envelope: flags, 4-byte big-endian length, payload. */
export function envelope(payload: Uint8Array, flags = 0, length = payload.byteLength): Uint8Array {
  const out = new Uint8Array(5 + payload.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, length >>> 0);
  out.set(payload, 5);
  return out;
}

/** Valid bytes with damage: truncated, a byte flipped, or junk appended. */
export function mutated(valid: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.nat({ max: Math.max(0, valid.byteLength - 1) }).map((n) => valid.slice(0, n)),
    fc
      .tuple(fc.nat({ max: Math.max(0, valid.byteLength - 1) }), fc.integer({ min: 1, max: 255 }))
      .map(([i, x]) => {
        const c = valid.slice();
        if (c.byteLength > 0) c[i] = (c[i] ?? 0) ^ x;
        return c;
      }),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((junk) => concat(valid, junk)),
  );
}

/** Random protobuf-ish bytes: pure noise, mutations of `valid`, and varints that never end. */
export function protoBytes(valid: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 512 }),
    ...valid.map(mutated),
    fc.constantFrom(
      Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // length-delimited, 4 GiB long
      Uint8Array.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      Uint8Array.from([0x0f]), // wire type 7 (invalid)
      Uint8Array.from([0x00]), // field number 0
      Uint8Array.from([0x12, 0x03, 0xff, 0xfe, 0xfd]), // a string field of invalid UTF-8
    ),
  );
}

/** Bytes that are not valid UTF-8, inside something that looks like JSON. */
export const invalidUtf8Json: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.constantFrom(
      [0xff],
      [0xc3],
      [0xed, 0xa0, 0x80],
      [0xf8, 0x88, 0x80, 0x80, 0x80],
      [0xc0, 0xaf],
    ),
    fc.constantFrom('{"kind":"', '{"tenantId":"', '{"'),
  )
  .map(([bad, head]) =>
    concat(new TextEncoder().encode(head), Uint8Array.from(bad), new TextEncoder().encode('"}')),
  );

/** `[[[...]]]` or `{"a":{"a":...}}` `depth` levels deep. */
export function nested(depth: number, kind: "array" | "object"): string {
  return kind === "array"
    ? "[".repeat(depth) + "]".repeat(depth)
    : '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

/** JSON request bodies: random JSON, truncated JSON, noise, deep nesting, huge values. */
export function jsonBodies(validJson: string[]): fc.Arbitrary<string | Uint8Array> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.json({ maxDepth: 4 }) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.constantFrom(...validJson), fc.nat())
        .map(([s, n]) => s.slice(0, n % Math.max(1, s.length))),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...validJson), fc.string({ maxLength: 8 }), fc.nat())
        .map(([s, junk, n]) => {
          const i = n % Math.max(1, s.length);
          return s.slice(0, i) + junk + s.slice(i);
        }),
    },
    { weight: 2, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 2, arbitrary: invalidUtf8Json },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.integer({ min: 100, max: 200_000 }), fc.constantFrom("array", "object" as const))
        .map(([d, k]) => `{"kind":"x","input":{"v":${nested(d, k)}}}`),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 1, max: 3 })
        .map((mib) => `{"kind":"${"x".repeat(mib * 1024 * 1024)}"}`),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '{"kind":"x","input":{"n":1e999999}}',
        '{"kind":"\\ud800"}',
        '{"kind":"x","priority":99999999999999999999}',
        '{"kind":"x","deadline":"9999-99-99T99:99:99Z"}',
        '{"kind":"x","labels":{"a":{"b":1}}}',
        '{"__proto__":{"polluted":true},"kind":"x"}',
        `{"kind":"x",${Array.from({ length: 5_000 }, (_, i) => `"k${i}":1`).join(",")}}`,
        "",
        "null",
        "\u0000",
      ),
    },
  );
}

/** Content types a client might wrongly send. */
export const wrongContentTypes = fc.constantFrom(
  "text/plain",
  "application/xml",
  "multipart/form-data; boundary=x",
  "application/x-www-form-urlencoded",
  "application/grpc+json; charset=utf-16",
  "application/connect+thrift",
  "application/json; charset=latin1",
  "",
  "application/",
  "*/*",
);

/** Deadline headers no sane client sends: Connect `connect-timeout-ms` or gRPC `grpc-timeout`. */
export const absurdConnectTimeouts = fc.constantFrom(
  "-1",
  "0",
  "abc",
  "99999999999999999999",
  "1.5",
  "1e3",
  "",
  "00000000001",
);
export const absurdGrpcTimeouts = fc.constantFrom(
  "99999999H",
  "0n",
  "1n",
  "-5S",
  "xyz",
  "123456789012m",
  "5",
  "S",
  "1Q",
);

/** Codes a correct server may give bad input, as Connect names them. */
const badCodes = new Set(["internal", "unknown", "data_loss"]);
/** And as gRPC numbers: UNKNOWN 2, INTERNAL 13, DATA_LOSS 15. */
const badGrpc = new Set([2, 13, 15]);

/** Why an HTTP/Connect answer is not sensible, or undefined when it is. */
export function judgeConnect(status: number, code: string | undefined): string | undefined {
  // 501 is UNIMPLEMENTED (a method the service does not implement), 503/504 UNAVAILABLE/DEADLINE.
  const intended = status === 503 || status === 504 || (status === 501 && code === "unimplemented");
  if (status >= 500 && !intended) return `HTTP ${status} (${code})`;
  if (code !== undefined && badCodes.has(code)) return `code ${code} (HTTP ${status})`;
  return undefined;
}

/**
 * Why a gRPC answer is not sensible, or undefined when it is. Two INTERNALs
 * are intended, because the gRPC reference implementations (grpc-go and
 * grpc-js alike) answer these transport-level protocol violations so, before
 * any of our code runs: a frame flagged compressed without a usable
 * `grpc-encoding`, and a malformed `grpc-timeout` header. Bad *payloads*
 * never may be INTERNAL.
 */
export function judgeGrpc(
  status: number,
  grpcStatus: number | undefined,
  frame?: { flags: number; message: string },
): string | undefined {
  if (status >= 500 && status !== 503) return `HTTP ${status}`;
  if (grpcStatus === 13 && frame && frame.flags & 0x01 && /compress/i.test(frame.message))
    return undefined;
  if (grpcStatus === 13 && frame && /^Invalid grpc-timeout value/.test(frame.message))
    return undefined;
  if (grpcStatus !== undefined && badGrpc.has(grpcStatus)) return `grpc-status ${grpcStatus}`;
  return undefined;
}

export interface H2Answer {
  status: number;
  grpcStatus: number | undefined;
  grpcMessage: string;
  body: Buffer;
  /** True when the server answered nothing in time (the call was cancelled by the client). */
  timedOut: boolean;
}

/** Opens an HTTP/2 session (h2c for `http:`, TLS with client certificates for `https:`). */
export function openH2(url: string, tls?: SecureClientSessionOptions): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2connect(url, tls ?? {});
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** One raw HTTP/2 request; a stream reset counts as an answer with no grpc-status. */
export function h2Request(
  session: ClientHttp2Session,
  path: string,
  headers: Record<string, string>,
  body: Uint8Array,
  timeoutMs = 5_000,
): Promise<H2Answer> {
  return new Promise((resolve) => {
    const req = session.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
    let status = 0;
    let grpcStatus: number | undefined;
    let grpcMessage = "";
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (timedOut = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, grpcStatus, grpcMessage, body: Buffer.concat(chunks), timedOut });
    };
    const timer = setTimeout(() => {
      req.close();
      done(true);
    }, timeoutMs);
    const take = (h: Record<string, unknown>) => {
      if (h["grpc-status"] !== undefined) grpcStatus = Number(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) grpcMessage = String(h["grpc-message"]);
    };
    req.on("response", (h) => {
      status = Number(h[":status"]);
      take(h);
    });
    req.on("trailers", take);
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => done());
    req.on("close", () => done());
    req.on("error", () => done());
    req.end(body);
  });
}

/** A forced full GC (so RSS and heap compare like with like); exposes gc without a flag. */
export function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

export function memoryMiB(): { rss: number; heapUsed: number } {
  const m = process.memoryUsage();
  return { rss: Math.round(m.rss / 2 ** 20), heapUsed: Math.round(m.heapUsed / 2 ** 20) };
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

export interface Http1Answer {
  status: number;
  contentType: string;
  /** A response header (trailers are in the body for gRPC-Web). */
  header(name: string): string | undefined;
  body: Buffer;
}

/**
 * One HTTP/1.1 POST on its own connection. Oversized uploads may be answered
 * and the socket closed before the body is read; on a pooled connection that
 * would hit the next request, so each probe gets a fresh one.
 */
export function http1Post(
  url: string,
  headers: Record<string, string>,
  body: string | Uint8Array,
  timeoutMs = 10_000,
): Promise<Http1Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: "POST", headers, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers["content-type"] ?? ""),
            header: (name) => {
              const v = res.headers[name.toLowerCase()];
              return v === undefined ? undefined : String(v);
            },
            body: Buffer.concat(chunks),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    // A refused upload may close the socket while we still write: the answer, if any, wins.
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * Runs `probe` on batches of `batch` generated inputs at once until `budgetMs`
 * is spent. Reproducible: the seed is printed and taken from FUZZ_SEED.
 */
export async function fuzzFor<T>(
  name: string,
  input: fc.Arbitrary<T>,
  budgetMs: number,
  probe: (x: T) => Promise<void>,
  batch = 8,
): Promise<number> {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  const deadline = Date.now() + budgetMs;
  let n = 0;
  for (let round = 0; Date.now() < deadline; round++) {
    const xs = fc.sample(input, { numRuns: batch, seed: seed + round });
    await Promise.all(xs.map(probe));
    n += xs.length;
  }
  console.log(`fuzz ${name}: ${n} inputs (FUZZ_SEED=${seed})`);
  return n;
}
