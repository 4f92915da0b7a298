/**
 * The little of tar and gzip that OPA bundles need: read the regular files of
 * a (ustar) archive, and write one deterministically (fixed owner, mode and
 * times, names in the given order), for tests and tools that assemble a
 * bundle by hand.
 *
 * @example
 * const files = untar(gunzipSync(await readFile("bundles/agentmesh.tar.gz")));
 * const bytes = tarGz([["/.manifest", manifest], ["/policy.wasm", wasm]]);
 */
import { gzipSync } from "node:zlib";

/** The regular files of a (ustar) tar archive, by name without a leading slash. */
export function untar(archive: Uint8Array): Map<string, Buffer> {
  const buf = Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength);
  const files = new Map<string, Buffer>();
  let offset = 0;
  while (offset + 512 <= buf.length) {
    const header = buf.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number) =>
      header
        .subarray(start, start + length)
        .toString("utf8")
        .replace(/\0.*$/s, "");
    const prefix = field(345, 155);
    const name = (prefix ? `${prefix}/` : "") + field(0, 100);
    const size = Number.parseInt(field(124, 12).trim() || "0", 8);
    if (!Number.isFinite(size) || size < 0) throw new Error(`bad tar header for ${name}`);
    const type = field(156, 1);
    const body = offset + 512;
    if (body + size > buf.length) throw new Error(`tar archive truncated in ${name}`);
    if (type === "0" || type === "")
      files.set(name.replace(/^\/+/, ""), buf.subarray(body, body + size));
    offset = body + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** A gzipped ustar archive of `files` (name, content), byte-reproducible. */
export function tarGz(files: Iterable<[string, Uint8Array | string]>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of files) {
    const body = typeof content === "string" ? Buffer.from(content) : Buffer.from(content);
    if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long: ${name}`);
    const header = Buffer.alloc(512);
    header.write(name, 0, 100, "utf8");
    header.write("0000600\0", 100); // mode
    header.write("0000000\0", 108); // uid
    header.write("0000000\0", 116); // gid
    header.write(`${body.length.toString(8).padStart(11, "0")}\0`, 124);
    header.write("00000000000\0", 136); // mtime
    header.write("        ", 148); // checksum placeholder
    header.write("0", 156); // regular file
    header.write("ustar\0" + "00", 257);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks), { level: 9 });
}
