#!/usr/bin/env bash
# Generates the Python gRPC client of the agentmesh API into DIR (default
# sdk/python/gen) with Debian's packages (no PyPI needed):
#   apt-get install protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf
# protoc 3.21 matches python3-protobuf 3.21 and knows proto3 `optional`
# (python3-grpc-tools bundles protoc 3.6, which does not). The contract
# (proto/agentmesh/v1) plus protovalidate's buf/validate, which the contract
# imports and Debian does not package; never the vendored gRPC health and
# reflection protocols.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/sdk/python/gen}"
mkdir -p "$out"
cd "$root"
protoc -I proto -I third_party/proto \
  --python_out="$out" \
  --grpc_out="$out" --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" \
  proto/agentmesh/v1/*.proto third_party/proto/buf/validate/validate.proto
echo "$out"
