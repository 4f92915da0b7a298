#!/usr/bin/env bash
# The pinned tools and schema sources of the Kubernetes manifests' offline validation
# (test/k8s-validate.test.ts) and the Dockerfile lint, installed once per machine:
# kustomize and kubeconform with `go install`, the schema sources with
# `go mod download` (the Go module proxy serves them; test/k8s/schemas.ts turns them into
# strict JSON schemas), and .ci/dockerfile-lint (BuildKit's `docker build --check` rules).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/go/bin:$PATH"
KUSTOMIZE_VERSION=v5.7.1
KUBECONFORM_VERSION=v0.7.0
KUBERNETES_VERSION=v1.34.2
CERT_MANAGER_VERSION=v1.19.1
TRUST_MANAGER_VERSION=v0.25.0
KEDA_VERSION=v2.21.1
GATEWAY_API_VERSION=v1.4.1

kustomize_version="$(kustomize version 2>/dev/null || true)"
if [[ "$kustomize_version" != "$KUSTOMIZE_VERSION" ]]; then
  go install "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"
fi
if ! kubeconform -v >/dev/null 2>&1 || [[ ! -f "$HOME/go/bin/.kubeconform-${KUBECONFORM_VERSION}" ]]; then
  go install "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}"
  touch "$HOME/go/bin/.kubeconform-${KUBECONFORM_VERSION}"
fi
# KEDA's go.mod asks for a newer Go than ours: the download succeeds, then `go` complains.
for module in "k8s.io/kubernetes@${KUBERNETES_VERSION}" \
  "github.com/cert-manager/cert-manager@${CERT_MANAGER_VERSION}" \
  "github.com/cert-manager/trust-manager@${TRUST_MANAGER_VERSION}" \
  "github.com/kedacore/keda/v2@${KEDA_VERSION}" \
  "sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}"; do
  GOFLAGS=-mod=mod go mod download "$module" >/dev/null 2>&1 || true
  dir="$(go env GOMODCACHE)/${module}"
  [[ -d "$dir" ]] || { echo "could not download $module" >&2; exit 1; }
done
(cd .ci/dockerfile-lint && go build -o "$HOME/go/bin/agentmesh-dockerfile-lint" .)
echo "kustomize $(kustomize version), kubeconform ${KUBECONFORM_VERSION}, schema sources downloaded"
