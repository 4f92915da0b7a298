/**
 * protobuf-es ↔ grpc-js bytes. grpc-js wants Buffers; protobuf-es produces
 * Uint8Arrays: wrap, never copy. Decoding failures are INVALID_ARGUMENT.
 */
import { type DescMessage, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import { Code, MeshError } from "../errors/mesh-error.js";

/** Wraps protobuf-es bytes as a Buffer without copying. */
export function encode(schema: DescMessage, message: Message): Buffer {
  const bytes = toBinary(schema, message);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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
