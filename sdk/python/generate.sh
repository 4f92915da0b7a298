#!/usr/bin/env bash
# Generates the Python gRPC client of the agentmesh API into DIR (default
# sdk/python/gen) with Debian's python3-grpc-tools (no PyPI needed):
#   apt-get install python3-grpcio python3-grpc-tools python3-protobuf
# The contract (proto/agentmesh/v1) plus protovalidate's buf/validate, which
# the contract imports and which Debian does not package; never the vendored
# gRPC health and reflection protocols.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/sdk/python/gen}"
python=/usr/bin/python3
wkt="$("$python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
mkdir -p "$out"
cd "$root"
"$python" -m grpc_tools.protoc -I proto -I third_party/proto -I "$wkt" \
  --python_out="$out" --grpc_python_out="$out" \
  proto/agentmesh/v1/*.proto third_party/proto/buf/validate/validate.proto
echo "$out"
