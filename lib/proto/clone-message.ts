/**
 * protobuf-es's `clone` for proto3 messages, as a plain deep copy. `clone`
 * walks both messages through the reflection layer (converting Struct fields
 * to messages and back); the executor clones every step of a playbook for
 * each goal it plans, and that was 2.5 % of its CPU. A proto3 message keeps no
 * state beyond its own properties (no defaults on a prototype, as proto2's
 * have), so copying them, lists, maps, oneofs, Struct JSON and bytes included,
 * gives what `clone` gives (except that `clone` also refuses a map key that is
 * not valid UTF-8, which this copies). A type reaching anything but proto3 goes
 * to `clone`.
 *
 * @example
 * const step = cloneMessage(StepSchema, template); // clone(StepSchema, template)
 */
import { clone, type DescMessage, type Message } from "@bufbuild/protobuf";

const proto3 = 999; // Edition.EDITION_PROTO3

/** Whether every message type reachable from a type is proto3, by type. */
const plain = new WeakMap<DescMessage, boolean>();

function isAllProto3(desc: DescMessage): boolean {
  let ok = plain.get(desc);
  if (ok === undefined) {
    ok = reachesOnlyProto3(desc, new Set());
    plain.set(desc, ok);
  }
  return ok;
}

function reachesOnlyProto3(desc: DescMessage, seen: Set<DescMessage>): boolean {
  if (seen.has(desc)) return true;
  seen.add(desc);
  if (desc.file.edition !== proto3) return false;
  return desc.fields.every((f) => f.message === undefined || reachesOnlyProto3(f.message, seen));
}

function copy(v: unknown): unknown {
  if (typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) return v.map(copy);
  if (v instanceof Uint8Array) return v.slice();
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = copy((v as Record<string, unknown>)[k]);
  return out;
}

/** `clone(schema, message)`: a deep copy, without reflection for proto3 types. */
export function cloneMessage<T extends Message>(schema: DescMessage, message: T): T {
  if (!isAllProto3(schema)) return clone(schema, message as never) as T;
  return copy(message) as T;
}
