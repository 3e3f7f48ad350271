#!/usr/bin/env bash
# Build the helm CLI from the Go module helm.sh/helm/v3 (Debian has no helm package)
# into a per-version cache dir outside the repo, for the chart tests (tests/deploy/test_helm.py).
#
# Built as hack/go-install.sh builds (the module's own go.mod and go.sum); idempotent.
#
# Env:
#   HELM_VERSION  default v3.22.0
#   HELM_BIN_DIR  default ${XDG_CACHE_HOME:-$HOME/.cache}/gpuclass-extender/helm/$HELM_VERSION
#   GO            default: `go` on PATH, else /usr/local/go/bin/go
#
# Prints `HELM_BIN=path` at the end for callers to eval.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
HELM_BIN_DIR="${HELM_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gpuclass-extender/helm/$HELM_VERSION}"
# Bump BUILD_RECIPE when the build flags change so a cached binary gets rebuilt.
BUILD_RECIPE="1"
STAMP="$HELM_VERSION recipe=$BUILD_RECIPE"
# What helm's own Makefile stamps: `helm version`, and the Kubernetes version that
# .Capabilities and the deprecation lint assume (one minor above its client-go v0.37).
LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
LDFLAGS+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  LDFLAGS+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=37"
done

# shellcheck source=hack/go-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-install.sh"
go_install_once helm "$HELM_BIN_DIR" helm "$STAMP" "$LDFLAGS" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

echo "HELM_BIN=$HELM_BIN_DIR/helm"
