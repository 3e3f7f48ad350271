# shellcheck shell=bash
# Sourced by hack/build-helm.sh and hack/build-karpenter.sh: build one command of a Go
# module with `go install module/cmd@version`, which uses the module's own go.mod and go.sum
# (checked against the Go checksum database), so no go.mod of ours pins its dependencies.
# The binary lands in a per-version cache dir outside the repo, with a build stamp; a
# binary with the expected stamp is not built again.
#
# Env: GO  default `go` on PATH, else /usr/local/go/bin/go

if [[ -z "${GO:-}" ]]; then
  if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
fi

# go_install_once TOOL DIR BINARY STAMP LDFLAGS PACKAGE@VERSION [AFTER]
# Builds PACKAGE@VERSION as DIR/BINARY unless DIR/.build-stamp already says STAMP. AFTER,
# a function name, runs with the temp build dir as $1 before the stamp is written (to
# fetch more of the module, say).
go_install_once() {
  local tool=$1 dir=$2 binary=$3 stamp=$4 ldflags=$5 package=$6 after=${7:-}
  if [[ -x "$dir/$binary" && "$(cat "$dir/.build-stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "[build-$tool] cached: $binary in $dir" >&2
    return
  fi
  mkdir -p "$dir"
  local tmp start=$SECONDS
  tmp="$(mktemp -d "$dir/.build.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: $tmp is local
  trap "rm -rf '$tmp'" EXIT
  echo "[build-$tool] building $package ($("$GO" env GOVERSION)) -> $dir (takes a few minutes)" >&2
  # Outside any module, so that the repo's settings cannot leak into the build.
  (
    cd "$tmp" || exit
    GOBIN="$tmp" GOFLAGS=-mod=mod CGO_ENABLED=0 "$GO" install -trimpath -ldflags "$ldflags" "$package"
  )
  if [[ -n "$after" ]]; then "$after" "$tmp"; fi
  mv -f "$tmp/$(basename "${package%@*}")" "$dir/$binary"
  echo "$stamp" >"$dir/.build-stamp"
  echo "[build-$tool] built in $((SECONDS - start)) s" >&2
}
