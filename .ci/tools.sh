#!/usr/bin/env bash
# Installs the pinned Go tools CI and tests use, once per machine (go install
# caches in $HOME/go/bin). Versions are pinned here and nowhere else.
set -euo pipefail
export PATH="$HOME/go/bin:$PATH"
OPA_VERSION=v1.22.3
GRPCURL_VERSION=v1.9.4
# The project's NATS: CI serves it on 127.0.0.1:4222 (.ci/nats.sh) and tests
# start private instances of it (lib/testing/nats-server.ts). README states the minimum.
NATS_SERVER_VERSION=v2.15.3
# Code generators of the Go SDK (buf.gen.go.yaml → sdk/go/gen).
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
PROTOC_GEN_CONNECT_GO_VERSION=v1.21.1
# promtool checks ops/prometheus/*.yaml and runs their unit tests (test/ops-rules.test.ts).
# Built from source (minutes), so only when the installed one is another version.
PROMETHEUS_VERSION=v0.316.0

# Read versions into variables: piping into `head`/`grep -q` under pipefail
# would fail on SIGPIPE.
opa_version="$(opa version 2>/dev/null || true)"
if [[ "$opa_version" != *"Version: ${OPA_VERSION#v}"* ]]; then
  go install "github.com/open-policy-agent/opa@${OPA_VERSION}"
  opa_version="$(opa version)"
fi
if ! command -v grpcurl >/dev/null 2>&1; then
  go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@${GRPCURL_VERSION}"
fi
# Not `command -v`: Debian's older nats-server sits in /usr/sbin.
nats_version="$("$HOME/go/bin/nats-server" --version 2>/dev/null || true)"
if [[ "$nats_version" != "nats-server: ${NATS_SERVER_VERSION}" ]]; then
  go install "github.com/nats-io/nats-server/v2@${NATS_SERVER_VERSION}"
  nats_version="$("$HOME/go/bin/nats-server" --version)"
fi
# Each records the version it was installed at: the binaries print none reliably.
go_plugin() { # name module version
  local stamp="$HOME/go/bin/.$1.version"
  if [[ ! -x "$HOME/go/bin/$1" || "$(cat "$stamp" 2>/dev/null)" != "$3" ]]; then
    go install "$2@$3"
    echo "$3" >"$stamp"
  fi
}
go_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
go_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
go_plugin protoc-gen-connect-go connectrpc.com/connect/cmd/protoc-gen-connect-go "$PROTOC_GEN_CONNECT_GO_VERSION"
# promtool prints no version when built by `go install`: ask the binary's module info.
promtool_module="$(go version -m "$HOME/go/bin/promtool" 2>/dev/null || true)"
if [[ "$promtool_module" != *"github.com/prometheus/prometheus"*"${PROMETHEUS_VERSION}"* ]]; then
  go install "github.com/prometheus/prometheus/cmd/promtool@${PROMETHEUS_VERSION}"
fi
echo "${opa_version%%$'\n'*}"
echo "grpcurl: $(command -v grpcurl)"
echo "${nats_version} ($HOME/go/bin/nats-server)"
echo "protoc-gen-go ${PROTOC_GEN_GO_VERSION}, protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION}, protoc-gen-connect-go ${PROTOC_GEN_CONNECT_GO_VERSION}"
echo "promtool ${PROMETHEUS_VERSION} ($HOME/go/bin/promtool)"
