#!/usr/bin/env bash
# Regenerates the wrapper modules k8s/kubernetes/go.mod and k8s/etcd/go.mod (and their go.sum) from the
# pinned versions in versions.env. The staging `replace` lines are derived from the upstream module's
# own go.mod (its relative replaces become version pins), never typed by hand.
# Run after changing versions.env; commit the result.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

# wrapper DIR MODULE VERSION TOOL... : a module that requires MODULE@VERSION, repeats its replaces as
# version pins (staging vX.Y.Z ↔ v0.Y.Z) and lists the commands to build as `tool` directives.
wrapper() {
  local dir=$1 mod=$2 ver=$3; shift 3
  local gomod staging
  gomod=$(go mod download -json "$mod@$ver" | sed -nE 's/^\s*"GoMod": "(.*)",?$/\1/p')
  [ -f "$gomod" ] || { echo "gen: could not download $mod@$ver" >&2; exit 1; }
  staging="v0.${ver#v1.}"
  mkdir -p "$dir"
  rm -f "$dir/go.mod" "$dir/go.sum"
  (
    cd "$dir"
    go mod init "hostnic.local/k8s/$(basename "$dir")" >/dev/null 2>&1
    go mod edit -go=1.24.0 -require="$mod@$ver"
    { grep -E "^godebug " "$gomod" || true; } | while read -r _ kv; do go mod edit -godebug="$kv"; done
    # Each relative replace of the upstream module (a staging directory) becomes a version pin.
    go mod edit -json "$gomod" | python3 -c '
import json, sys
mod, ver, staging = sys.argv[1:4]
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"]["Path"], r["New"]
    if "FORBIDDEN" in new["Path"]:
        continue  # a guard against bad imports (etcd), not a module to pin
    if new["Path"].startswith("./") or new["Path"].startswith("../"):
        # k/k staging modules are versioned v0.N.M; etcd modules share its own version.
        pin = staging if mod == "k8s.io/kubernetes" else ver
        print(f"-replace={old}={old}@{pin}")
    elif new.get("Version"):
        path, version = new["Path"], new["Version"]
        print(f"-replace={old}={path}@{version}")
' "$mod" "$ver" "$staging" | xargs -r go mod edit
    for t in "$@"; do go mod edit -tool="$t"; done
    go mod tidy
  )
  echo "gen: $dir/go.mod ($(grep -c '=>' "$dir/go.mod") replaces, $# tools)"
}

wrapper "$here/kubernetes" k8s.io/kubernetes "$K8S_VERSION" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
wrapper "$here/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3
