#!/usr/bin/env bash
# Builds, from the Go module proxy at the pinned versions, through the wrapper modules beside this file:
#   core     etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
#            kubectl (versions.env; wrappers etcd/ and kubernetes/), for tests, demo and benchmarks
#   e2e      the upstream e2e suite (e2e.test) and agnhost (versions.env; wrapper e2e/)
#   coredns  CoreDNS for the cluster DNS of conformance runs (coredns/versions.env; wrapper coredns/)
#   kube-router  kube-router's NetworkPolicy controller, for deploy/policy/kube-router.yaml's image
#            (kube-router/versions.env; wrapper kube-router/)
# Each goes to its own directory, keyed by its own wrapper files (a new or changed component never
# rebuilds another); a complete directory is not built again. The last line printed is the core one.
#   HOSTNIC_K8S_CACHE        parent of the directories (default ~/.cache/hostnic)
#   --print-dir [COMPONENT]  only print that component's directory (default core; exit 1 if it is
#                            not complete)
#   --only COMPONENT         build just that one (default: all, core first)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
# shellcheck source=coredns/versions.env
. "$here/coredns/versions.env"
# shellcheck source=kube-router/versions.env
. "$here/kube-router/versions.env"
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
cache=${HOSTNIC_K8S_CACHE:-${HOME:-/root}/.cache/hostnic}
COMPONENTS=(core e2e coredns kube-router)

say() { printf '[k8s:build] %s\n' "$*" >&2; }
# key FILE... : the first 12 hex digits of the files' sha256 (relative to this directory)
key() { (cd "$here" && cat "$@" | sha256sum | cut -c1-12); }

# dir COMPONENT : its output directory. The wrapper modules are part of each key (a regenerated
# go.sum builds into a new directory); the core key covers only the core wrappers, so adding or
# changing another component never rebuilds Kubernetes.
dir() {
  case $1 in
  core) echo "$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-$(key versions.env etcd/go.mod kubernetes/go.mod etcd/go.sum kubernetes/go.sum)" ;;
  e2e) echo "$cache/e2e-$K8S_VERSION-$(key versions.env e2e/go.mod e2e/go.sum e2e/tools.go)" ;;
  coredns) echo "$cache/coredns-$COREDNS_VERSION-$(key coredns/versions.env coredns/go.mod coredns/go.sum coredns/main.go)" ;;
  kube-router) echo "$cache/kube-router-$KUBE_ROUTER_VERSION-$(key kube-router/versions.env kube-router/go.mod kube-router/go.sum)" ;;
  *) say "unknown component '$1' (${COMPONENTS[*]})"; exit 2 ;;
  esac
}
complete() { [ -f "$(dir "$1")/.complete" ]; }

if [ "${1:-}" = "--print-dir" ]; then
  c=${2:-core}
  d=$(dir "$c")
  complete "$c" || { say "$c not built yet: run 'deno task k8s:build'"; exit 1; }
  echo "$d"; exit 0
fi
want=("${COMPONENTS[@]}")
if [ "${1:-}" = "--only" ]; then
  dir "${2:-}" >/dev/null
  want=("$2")
elif [ $# -gt 0 ]; then
  say "usage: build.sh [--print-dir [COMPONENT]] [--only COMPONENT]   (components: ${COMPONENTS[*]})"
  exit 2
fi

todo=()
for c in "${want[@]}"; do complete "$c" || todo+=("$c"); done
if [ ${#todo[@]} -gt 0 ]; then
  command -v go >/dev/null || { say "'go' is not on PATH: install Go >= 1.25 (e.g. /usr/local/go/bin)"; exit 1; }
  gomajor=$(go env GOVERSION | sed -nE 's/^go1\.([0-9]+).*/\1/p')
  [ "${gomajor:-0}" -ge 25 ] || { say "Go $(go env GOVERSION) is too old: CoreDNS $COREDNS_VERSION needs Go >= 1.25"; exit 1; }
  free_kb=$(df -Pk "$(dirname "$cache")" 2>/dev/null | awk 'NR==2{print $4}' || echo 0)
  [ "${free_kb:-0}" -gt $((6 * 1024 * 1024)) ] || say "warning: less than 6 GiB free near $cache (modules and build cache need ~5 GiB)"
fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
vflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  vflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
tmp=""
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT

# Every build uses the same flags (-trimpath, CGO_ENABLED=0), so packages shared by the core and the
# e2e wrapper (same module versions) come from Go's build cache instead of compiling twice.
download() { # download NAME DIR
  say "downloading modules for $1"
  (cd "$2" && go mod download) || { say "module download for $1 failed (is the Go module proxy reachable?)"; exit 1; }
}
step() { # step NAME DIR PKG... : one `go build` of several packages into $tmp
  local name=$1 dir=$2; shift 2
  local t0=$(date +%s)
  download "$name" "$dir"
  say "compiling $name (cold: several minutes on 2 cores)"
  (cd "$dir" && go build -trimpath -ldflags "-s -w$vflags" -o "$tmp/" "$@") ||
    { say "building $name failed"; exit 1; }
  say "$name done in $(( $(date +%s) - t0 ))s"
}

build_core() {
  step "etcd $ETCD_VERSION" "$here/etcd" go.etcd.io/etcd/server/v3
  mv "$tmp/v3" "$tmp/etcd" 2>/dev/null || true
  [ -x "$tmp/etcd" ] || mv "$tmp/server" "$tmp/etcd"
  step "Kubernetes $K8S_VERSION (${K8S_BINS[*]})" "$here/kubernetes" \
    $(printf 'k8s.io/kubernetes/cmd/%s ' "${K8S_BINS[@]}")
  for b in etcd "${K8S_BINS[@]}"; do
    [ -x "$tmp/$b" ] || { say "missing after build: $b"; exit 1; }
  done
  echo "k8s=$K8S_VERSION etcd=$ETCD_VERSION"
}

build_e2e() {
  local t0=$(date +%s)
  step "agnhost $K8S_VERSION" "$here/e2e" k8s.io/kubernetes/test/images/agnhost
  say "compiling e2e.test $K8S_VERSION (go test -c k8s.io/kubernetes/test/e2e)"
  (cd "$here/e2e" && go test -c -trimpath -ldflags "-s -w$vflags" -o "$tmp/e2e.test" k8s.io/kubernetes/test/e2e) ||
    { say "building e2e.test failed"; exit 1; }
  say "e2e.test done in $(( $(date +%s) - t0 ))s"
  for b in e2e.test agnhost; do
    [ -x "$tmp/$b" ] || { say "missing after build: $b"; exit 1; }
  done
  echo "e2e=$K8S_VERSION"
}

build_coredns() {
  step "CoreDNS $COREDNS_VERSION" "$here/coredns" .
  [ -x "$tmp/coredns" ] || { say "missing after build: coredns"; exit 1; }
  local plugins
  plugins=$("$tmp/coredns" -plugins)
  grep -qxE ' *(dns\.)?kubernetes' <<<"$plugins" || { say "coredns lacks its kubernetes plugin"; exit 1; }
  echo "coredns=$COREDNS_VERSION"
}

build_kube-router() {
  local vflags="" # the -X version stamps above are Kubernetes'; kube-router has its own client-go
  step "kube-router $KUBE_ROUTER_VERSION" "$here/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
  [ -x "$tmp/kube-router" ] || { say "missing after build: kube-router"; exit 1; }
  "$tmp/kube-router" --help 2>&1 | grep -q -- '--run-firewall' || { say "kube-router lacks --run-firewall"; exit 1; }
  echo "kube-router=$KUBE_ROUTER_VERSION"
}

for c in "${want[@]}"; do
  out=$(dir "$c")
  if complete "$c"; then
    say "up to date: $c ($(head -1 "$out/.complete" | cut -d' ' -f1))"
    continue
  fi
  tmp="$out.tmp.$$"
  mkdir -p "$tmp"
  start=$(date +%s)
  what=$("build_$c")
  took=$(( $(date +%s) - start ))
  printf '%s built_in_s=%s\n' "$what" "$took" >"$tmp/.complete"
  rm -rf "$out"
  mv "$tmp" "$out"
  tmp=""
  say "built $c ($what) in ${took}s"
done
dir core
