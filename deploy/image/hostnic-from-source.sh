#!/bin/sh
# /usr/local/bin/hostnic in the source variant of the image (Dockerfile, stage `source`): runs
# hostnic from its source with the deno runtime shipped next to it, offline (--cached-only; the
# npm packages are in src/node_modules).
#
# `hostnic install` / `hostnic uninstall` (the DaemonSet's init container, or by hand) also put or
# take the runtime and source next to the CNI plugin, as <bin-dir>/hostnic.d, because the plugin
# runs on the node, outside this image: the installed plugin is a small script that runs them.
set -eu
APP=/usr/local/lib/hostnic
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
export DENO_DIR="${DENO_DIR:-/tmp/hostnic-deno}"

# The node directory install/uninstall write to: <--root><--bin-dir> (defaults / and /opt/cni/bin).
bin_dir() {
  root=/ dir=/opt/cni/bin
  while [ $# -gt 0 ]; do
    case "$1" in
      --root) root="$2"; shift ;;
      --root=*) root="${1#--root=}" ;;
      --bin-dir) dir="$2"; shift ;;
      --bin-dir=*) dir="${1#--bin-dir=}" ;;
    esac
    shift
  done
  echo "${root%/}${dir}"
}

run() { exec "$APP/deno" run -A --cached-only --quiet "$APP/src/main.ts" "$@"; }

case "${1:-}" in
  install)
    shift
    dest="$(bin_dir "$@")"
    mkdir -p "$dest"
    # The runtime and source first (a fresh copy renamed into place), the plugin script last:
    # `hostnic install` writes the script, then the network config.
    rm -rf "$dest/hostnic.d.new"
    cp -a "$APP" "$dest/hostnic.d.new"
    rm -rf "$dest/hostnic.d.old"
    if [ -e "$dest/hostnic.d" ]; then mv "$dest/hostnic.d" "$dest/hostnic.d.old"; fi
    mv "$dest/hostnic.d.new" "$dest/hostnic.d"
    rm -rf "$dest/hostnic.d.old"
    plugin="$(mktemp)"
    cat >"$plugin" <<SCRIPT
#!/bin/sh
# hostnic CNI plugin (source variant of the image): the runtime and source are in hostnic.d.
D="$dest/hostnic.d"
export DENO_DIR="\$D/cache" DENO_NO_UPDATE_CHECK=1
exec "\$D/deno" run -A --cached-only --quiet "\$D/src/main.ts" "\$@"
SCRIPT
    chmod 0755 "$plugin"
    "$APP/deno" run -A --cached-only --quiet "$APP/src/main.ts" install --source "$plugin" "$@" ||
      { rc=$?; rm -f "$plugin"; exit $rc; }
    rm -f "$plugin"
    ;;
  uninstall)
    shift
    dest="$(bin_dir "$@")"
    "$APP/deno" run -A --cached-only --quiet "$APP/src/main.ts" uninstall "$@"
    rm -rf "$dest/hostnic.d"
    ;;
  *) run "$@" ;;
esac
