/**
 * One socket write per event-loop turn on a NATS connection. nats.js writes
 * what was queued at the end of each microtask checkpoint, so a process that
 * publishes from several callbacks of one turn (an executor running the
 * transitions of a batch of results, an agent acking jobs as their results'
 * PubAcks arrive) makes a write, a system call, for each; on a VM a write costs
 * about as much as the publish that fills it. Here the write waits for the end
 * of the turn (`setImmediate`), so everything of that turn leaves in one.
 *
 * Only the timing changes: every command still goes into the connection's one
 * outbound buffer in call order, a buffer past the client's threshold (32 KiB)
 * is still written at once, and `flush()` (PING) still writes at once with
 * everything queued before it. A nats.js without the expected internals is
 * left as it is.
 *
 * @example
 * const nc = await connectNats("nats://127.0.0.1:4222");
 * coalesceWrites(nc);
 */
import type { NatsConnection } from "@nats-io/transport-node";

/** The parts of nats.js's ProtocolHandler (nats-core 3.x) this relies on. */
interface ProtocolHandler {
  outbound: { fill(buf: Uint8Array, ...payloads: Uint8Array[]): void; size(): number };
  pendingLimit: number;
  flushPending(): void;
  sendCommand(cmd: string | Uint8Array, ...payloads: Uint8Array[]): void;
}

const coalesced = new WeakSet<object>();
const encoder = new TextEncoder();

/** Makes `nc` write once per event-loop turn; returns false if this nats.js cannot be adapted. */
export function coalesceWrites(nc: NatsConnection): boolean {
  const protocol = (nc as unknown as { protocol?: Partial<ProtocolHandler> }).protocol;
  if (!isProtocolHandler(protocol)) return false;
  if (coalesced.has(protocol)) return true;
  coalesced.add(protocol);
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    protocol.flushPending();
  };
  protocol.sendCommand = (cmd, ...payloads) => {
    protocol.outbound.fill(typeof cmd === "string" ? encoder.encode(cmd) : cmd, ...payloads);
    if (protocol.outbound.size() >= protocol.pendingLimit) protocol.flushPending();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  return true;
}

function isProtocolHandler(p: Partial<ProtocolHandler> | undefined): p is ProtocolHandler {
  return (
    p !== undefined &&
    typeof p.sendCommand === "function" &&
    typeof p.flushPending === "function" &&
    typeof p.pendingLimit === "number" &&
    typeof p.outbound?.fill === "function" &&
    typeof p.outbound.size === "function"
  );
}
