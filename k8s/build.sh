#!/usr/bin/env bash
# Builds the real Kubernetes components our tests, demo and benchmarks run against (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl) from the Go
# module proxy, at the versions pinned in versions.env, through the wrapper modules beside this file.
# Output: one directory per version pair (printed on the last line); does nothing when it is complete.
#   HOSTNIC_K8S_CACHE  parent of the per-version directories (default ~/.cache/hostnic)
#   --print-dir        only print the directory (exit 1 if it is not complete)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
cache=${HOSTNIC_K8S_CACHE:-${HOME:-/root}/.cache/hostnic}
# The wrapper modules are part of the key: a regenerated go.sum builds into a new directory.
# Only the core wrappers: other components (e2e, CoreDNS, kube-router) keep their own keys, so adding
# one never rebuilds Kubernetes.
key=$(cd "$here" && cat versions.env etcd/go.mod kubernetes/go.mod etcd/go.sum kubernetes/go.sum | sha256sum | cut -c1-12)
out="$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-$key"

say() { printf '[k8s:build] %s\n' "$*" >&2; }
complete() { [ -f "$out/.complete" ]; }

if [ "${1:-}" = "--print-dir" ]; then
  complete || { say "not built yet: run 'deno task k8s:build'"; exit 1; }
  echo "$out"; exit 0
fi
if complete; then
  say "up to date: Kubernetes $K8S_VERSION, etcd $ETCD_VERSION"
  echo "$out"; exit 0
fi
command -v go >/dev/null || { say "'go' is not on PATH: install Go >= 1.24 (e.g. /usr/local/go/bin)"; exit 1; }
gomajor=$(go env GOVERSION | sed -nE 's/^go1\.([0-9]+).*/\1/p')
[ "${gomajor:-0}" -ge 24 ] || { say "Go $(go env GOVERSION) is too old: Kubernetes $K8S_VERSION needs Go >= 1.24"; exit 1; }
free_kb=$(df -Pk "$(dirname "$cache")" 2>/dev/null | awk 'NR==2{print $4}' || echo 0)
[ "${free_kb:-0}" -gt $((4 * 1024 * 1024)) ] || say "warning: less than 4 GiB free near $cache (modules and build cache need ~3 GiB)"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
tmp="$out.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
start=$(date +%s)
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
vflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  vflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

step() { # step NAME DIR PKG... : one `go build` of several packages into $tmp
  local name=$1 dir=$2; shift 2
  local t0=$(date +%s)
  say "downloading modules for $name"
  (cd "$dir" && go mod download) || { say "module download for $name failed (is the Go module proxy reachable?)"; exit 1; }
  say "compiling $name (cold: several minutes on 2 cores)"
  (cd "$dir" && go build -trimpath -ldflags "-s -w$vflags" -o "$tmp/" "$@") ||
    { say "building $name failed"; exit 1; }
  say "$name done in $(( $(date +%s) - t0 ))s"
}

step "etcd $ETCD_VERSION" "$here/etcd" go.etcd.io/etcd/server/v3
mv "$tmp/v3" "$tmp/etcd" 2>/dev/null || true
[ -x "$tmp/etcd" ] || mv "$tmp/server" "$tmp/etcd"
step "Kubernetes $K8S_VERSION (${K8S_BINS[*]})" "$here/kubernetes" \
  $(printf 'k8s.io/kubernetes/cmd/%s ' "${K8S_BINS[@]}")

for b in etcd "${K8S_BINS[@]}"; do
  [ -x "$tmp/$b" ] || { say "missing after build: $b"; exit 1; }
done
took=$(( $(date +%s) - start ))
printf 'k8s=%s etcd=%s built_in_s=%s\n' "$K8S_VERSION" "$ETCD_VERSION" "$took" >"$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
say "built Kubernetes $K8S_VERSION and etcd $ETCD_VERSION in ${took}s"
echo "$out"
