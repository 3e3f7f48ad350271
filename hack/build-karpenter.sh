#!/usr/bin/env bash
# Build Karpenter's KWOK provider (package sigs.k8s.io/karpenter/kwok: Karpenter with a fake
# cloud that creates Node objects) from its Go module into a per-version cache dir outside
# the repo, with the CRDs it needs, for the autoscaling tests (tests/integration/test_karpenter.py).
#
# `go install module@version` builds with Karpenter's own go.mod and go.sum, checked against
# the Go checksum database. v1.14.1 declares Go 1.26.6, which the machines here have.
# Idempotent: if the binary and its build stamp exist in the cache dir, nothing is built.
#
# Env:
#   KARPENTER_VERSION  default v1.14.1
#   KARPENTER_DIR      default ${XDG_CACHE_HOME:-$HOME/.cache}/gpuclass-extender/karpenter/$KARPENTER_VERSION
#   GO                 default: `go` on PATH, else /usr/local/go/bin/go
#
# Prints `KARPENTER_DIR=path` at the end (binary `karpenter-kwok`, CRDs under `crds/`).
set -euo pipefail

KARPENTER_VERSION="${KARPENTER_VERSION:-v1.14.1}"
KARPENTER_DIR="${KARPENTER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gpuclass-extender/karpenter/$KARPENTER_VERSION}"
# Bump BUILD_RECIPE when the build flags change so a cached binary gets rebuilt.
BUILD_RECIPE="2"
STAMP="$KARPENTER_VERSION recipe=$BUILD_RECIPE"
MODULE="sigs.k8s.io/karpenter"

if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi

log() { echo "[build-karpenter] $*" >&2; }

if [[ -x "$KARPENTER_DIR/karpenter-kwok" && "$(cat "$KARPENTER_DIR/.build-stamp" 2>/dev/null)" == "$STAMP" ]]; then
  log "cached: karpenter-kwok in $KARPENTER_DIR"
else
  mkdir -p "$KARPENTER_DIR"
  tmp="$(mktemp -d "$KARPENTER_DIR/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  log "building karpenter-kwok $KARPENTER_VERSION ($("$GO" env GOVERSION)) -> $KARPENTER_DIR (takes a few minutes)"
  start=$SECONDS
  # Outside any module, so that the repo's settings cannot leak into the build.
  (
    cd "$tmp"
    GOBIN="$tmp" GOFLAGS=-mod=mod CGO_ENABLED=0 "$GO" install -trimpath -ldflags "-s -w" \
      "$MODULE/kwok@$KARPENTER_VERSION"
  )
  # The CRDs come from the same module version: Karpenter's own (NodePool, NodeClaim,
  # NodeOverlay, CapacityBuffer) and the KWOK provider's node class (KWOKNodeClass).
  source_dir="$(cd "$tmp" && GOFLAGS=-mod=mod "$GO" mod download -json "$MODULE@$KARPENTER_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  rm -rf "$KARPENTER_DIR/crds"
  mkdir -p "$KARPENTER_DIR/crds"
  cp "$source_dir"/pkg/apis/crds/*.yaml "$source_dir"/kwok/apis/crds/*.yaml "$KARPENTER_DIR/crds/"
  chmod u+w "$KARPENTER_DIR"/crds/*.yaml
  mv -f "$tmp/kwok" "$KARPENTER_DIR/karpenter-kwok"
  echo "$STAMP" >"$KARPENTER_DIR/.build-stamp"
  log "built in $((SECONDS - start)) s"
fi

echo "KARPENTER_DIR=$KARPENTER_DIR"
