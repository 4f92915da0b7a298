/**
 * protobuf-es ↔ grpc-js bytes. grpc-js wants Buffers; messages are encoded
 * with `encodeBinary` (toBinary's bytes, for less CPU) into Uint8Arrays: wrap,
 * never copy. Decoding failures are INVALID_ARGUMENT.
 * A response a service answers many times over (a cached list) can be encoded
 * once with `preEncoded`: its bytes are then sent as they are.
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type Message,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { Code, MeshError } from "../errors/mesh-error.js";
import { encodeBinary } from "../proto/binary-encoder.js";

/** The bytes of messages made by `preEncoded`, by message. */
const encodings = new WeakMap<Message, { schema: DescMessage; bytes: Buffer }>();

/** Wraps protobuf-es bytes as a Buffer without copying (a `preEncoded` message: its bytes). */
export function encode(schema: DescMessage, message: Message): Buffer {
  const known = encodings.get(message);
  if (known !== undefined && known.schema === schema) return known.bytes;
  const bytes = encodeBinary(schema, message);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A message that encodes to `init`'s bytes without walking it again: `encode`
 * sends the bytes made here (grpc-js copies them into each frame and never
 * changes them), and `toBinary` gives the same bytes, since the top-level
 * fields are kept, already encoded, as unknown fields. For wire use only: its
 * own fields read empty, and it must not be changed.
 */
export function preEncoded<Desc extends DescMessage>(
  schema: Desc,
  init: MessageInitShape<Desc>,
): MessageShape<Desc> {
  const bytes = toBinary(schema, create(schema, init));
  const message = create(schema);
  const fields = fromBinary(EmptySchema, bytes).$unknown;
  if (fields) message.$unknown = fields;
  encodings.set(message, {
    schema,
    bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  });
  return message;
}

/** Decodes request bytes; malformed protobuf is INVALID_ARGUMENT. */
export function decode(schema: DescMessage, bytes: Uint8Array): Message {
  try {
    // A Uint8Array view (not the Buffer itself) so decoded `bytes` fields are plain Uint8Arrays.
    return fromBinary(schema, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    throw new MeshError(
      Code.InvalidArgument,
      `malformed ${schema.typeName}: ${err instanceof Error ? err.message : "decode failed"}`,
      {
        cause: err,
      },
    );
  }
}
