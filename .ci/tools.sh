#!/usr/bin/env bash
# Installs the pinned Go tools CI and tests use, once per machine (go install
# caches in $HOME/go/bin). Versions are pinned here and nowhere else.
set -euo pipefail
export PATH="$HOME/go/bin:$PATH"
OPA_VERSION=v1.22.3
GRPCURL_VERSION=v1.9.4

have() { command -v "$1" >/dev/null 2>&1 && "$@" >/dev/null 2>&1; }

if ! opa version 2>/dev/null | grep -q "^Version: ${OPA_VERSION#v}$"; then
  go install "github.com/open-policy-agent/opa@${OPA_VERSION}"
fi
if ! have grpcurl -version; then
  go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@${GRPCURL_VERSION}"
fi
opa version | head -1
grpcurl -version 2>&1 | head -1
