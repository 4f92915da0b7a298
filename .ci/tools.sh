#!/usr/bin/env bash
# Installs the pinned Go tools CI and tests use, once per machine (go install
# caches in $HOME/go/bin). Versions are pinned here and nowhere else.
set -euo pipefail
export PATH="$HOME/go/bin:$PATH"
OPA_VERSION=v1.22.3
GRPCURL_VERSION=v1.9.4

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
echo "${opa_version%%$'\n'*}"
echo "grpcurl: $(command -v grpcurl)"
