#!/usr/bin/env bash
# Build Karpenter's KWOK provider (package sigs.k8s.io/karpenter/kwok: Karpenter with a fake
# cloud that creates Node objects) from its Go module into a per-version cache dir outside
# the repo, with the CRDs it needs, for the autoscaling tests (tests/integration/test_karpenter.py).
#
# Built as hack/go-install.sh builds (the module's own go.mod and go.sum); idempotent.
# v1.14.1 declares Go 1.26.6, which the machines here have.
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

# The CRDs come from the same module version: Karpenter's own (NodePool, NodeClaim,
# NodeOverlay, CapacityBuffer) and the KWOK provider's node class (KWOKNodeClass).
copy_crds() {
  local source_dir
  source_dir="$(cd "$1" && GOFLAGS=-mod=mod "$GO" mod download -json "$MODULE@$KARPENTER_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  rm -rf "$KARPENTER_DIR/crds"
  mkdir -p "$KARPENTER_DIR/crds"
  cp "$source_dir"/pkg/apis/crds/*.yaml "$source_dir"/kwok/apis/crds/*.yaml "$KARPENTER_DIR/crds/"
  chmod u+w "$KARPENTER_DIR"/crds/*.yaml
}

# shellcheck source=hack/go-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-install.sh"
go_install_once karpenter "$KARPENTER_DIR" karpenter-kwok "$STAMP" "-s -w" \
  "$MODULE/kwok@$KARPENTER_VERSION" copy_crds

echo "KARPENTER_DIR=$KARPENTER_DIR"
