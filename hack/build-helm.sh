#!/usr/bin/env bash
# Build the helm CLI from the Go module helm.sh/helm/v3 (Debian has no helm package)
# into a per-version cache dir outside the repo, for the chart tests (tests/deploy/test_helm.py).
#
# `go install module@version` builds with helm's own go.mod and go.sum, checked against
# the Go checksum database, so no go.mod of ours pins its dependencies.
# Idempotent: if the binary and its build stamp exist in the cache dir, nothing is built.
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

if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi

log() { echo "[build-helm] $*" >&2; }

if [[ -x "$HELM_BIN_DIR/helm" && "$(cat "$HELM_BIN_DIR/.build-stamp" 2>/dev/null)" == "$STAMP" ]]; then
  log "cached: helm in $HELM_BIN_DIR"
else
  mkdir -p "$HELM_BIN_DIR"
  tmp="$(mktemp -d "$HELM_BIN_DIR/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  log "building helm $HELM_VERSION ($("$GO" env GOVERSION)) -> $HELM_BIN_DIR (takes a few minutes)"
  start=$SECONDS
  # Outside any module, so that the repo's settings cannot leak into the build.
  (
    cd "$tmp"
    GOBIN="$tmp" GOFLAGS=-mod=mod CGO_ENABLED=0 "$GO" install -trimpath \
      -ldflags "$LDFLAGS" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  )
  mv -f "$tmp/helm" "$HELM_BIN_DIR/helm"
  echo "$STAMP" >"$HELM_BIN_DIR/.build-stamp"
  log "built in $((SECONDS - start)) s"
fi

echo "HELM_BIN=$HELM_BIN_DIR/helm"
