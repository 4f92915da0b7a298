/**
 * gRPC server reflection (v1 and the older v1alpha that many tools still
 * try first), built from the protobuf-es descriptors of the services a server
 * serves: each file is sent as `toBinary(FileDescriptorProtoSchema, file.proto)`
 * together with its transitive dependencies. With it,
 * `grpcurl -cacert ca.crt -cert tls.crt -key tls.key host:port list | describe`
 * works against any mesh server.
 */
import { type DescFile, type DescMessage, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  type ServerReflectionRequest,
  ServerReflection as ServerReflectionV1,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { Code } from "../errors/mesh-error.js";
import type { ServiceImpl } from "./handler.js";

/** @internal The two reflection services of one server. */
export interface Reflection {
  v1: typeof ServerReflectionV1;
  v1Impl: ServiceImpl<typeof ServerReflectionV1>;
  v1alpha: typeof ServerReflectionV1alpha;
  v1alphaImpl: ServiceImpl<typeof ServerReflectionV1alpha>;
}

interface Index {
  services: string[];
  files: Map<string, DescFile>;
  symbols: Map<string, DescFile>;
  bytes: Map<DescFile, Uint8Array>;
}

/** Reflection over the services `services()` returns (read on first use, after `listen()`). */
export function createReflection(services: () => readonly DescService[]): Reflection {
  let index: Index | undefined;
  const getIndex = () => {
    index ??= buildIndex(services());
    return index;
  };
  const impl = {
    async *serverReflectionInfo(requests: AsyncIterable<ServerReflectionRequest>) {
      const sent = new Set<string>();
      for await (const req of requests) yield answer(getIndex(), req, sent);
    },
  };
  return {
    v1: ServerReflectionV1,
    v1Impl: impl,
    v1alpha: ServerReflectionV1alpha,
    // The v1alpha messages have the same fields as v1; only their type names differ.
    v1alphaImpl: impl as unknown as ServiceImpl<typeof ServerReflectionV1alpha>,
  };
}

function buildIndex(services: readonly DescService[]): Index {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const addFile = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const dep of file.dependencies) addFile(dep);
    for (const s of file.services) {
      symbols.set(s.typeName, file);
      for (const m of s.methods) symbols.set(`${s.typeName}.${m.name}`, file);
    }
    for (const e of file.enums) symbols.set(e.typeName, file);
    for (const x of file.extensions) symbols.set(x.typeName, file);
    const addMessage = (m: DescMessage) => {
      symbols.set(m.typeName, file);
      for (const n of m.nestedMessages) addMessage(n);
      for (const e of m.nestedEnums) symbols.set(e.typeName, file);
      for (const x of m.nestedExtensions) symbols.set(x.typeName, file);
    };
    for (const m of file.messages) addMessage(m);
  };
  for (const s of services) addFile(s.file);
  return { services: services.map((s) => s.typeName), files, symbols, bytes: new Map() };
}

type Answer = Record<string, unknown>;

function answer(index: Index, req: ServerReflectionRequest, sent: Set<string>): Answer {
  const base = { validHost: req.host, originalRequest: req };
  const r = req.messageRequest;
  const notFound = (what: string): Answer => ({
    ...base,
    messageResponse: {
      case: "errorResponse",
      value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
    },
  });
  switch (r.case) {
    case "listServices":
      return {
        ...base,
        messageResponse: {
          case: "listServicesResponse",
          value: { service: index.services.map((name) => ({ name })) },
        },
      };
    case "fileByFilename": {
      const file = index.files.get(r.value);
      return file ? fileResponse(index, base, file, sent) : notFound(`file ${r.value}`);
    }
    case "fileContainingSymbol": {
      const file = index.symbols.get(r.value.replace(/^\./, ""));
      return file ? fileResponse(index, base, file, sent) : notFound(`symbol ${r.value}`);
    }
    case "fileContainingExtension":
      // The mesh's protocol defines no extensions.
      return notFound(`extension ${r.value.extensionNumber} of ${r.value.containingType}`);
    case "allExtensionNumbersOfType": {
      if (!index.symbols.has(r.value)) return notFound(`type ${r.value}`);
      return {
        ...base,
        messageResponse: {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: r.value, extensionNumber: [] },
        },
      };
    }
    default:
      return {
        ...base,
        messageResponse: {
          case: "errorResponse",
          value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" },
        },
      };
  }
}

/** The file and the transitive dependencies not yet sent on this stream. */
function fileResponse(index: Index, base: Answer, file: DescFile, sent: Set<string>): Answer {
  const out: Uint8Array[] = [];
  const visit = (f: DescFile, requested: boolean) => {
    if (!requested && sent.has(f.proto.name)) return;
    sent.add(f.proto.name);
    let bytes = index.bytes.get(f);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, f.proto);
      index.bytes.set(f, bytes);
    }
    out.push(bytes);
    for (const dep of f.dependencies) visit(dep, false);
  };
  visit(file, true);
  return {
    ...base,
    messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } },
  };
}
