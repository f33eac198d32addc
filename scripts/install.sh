#!/bin/sh
# Installs pin-preload from this unpacked offline package onto a node: the app under
# <prefix>/lib/pin-preload, a <prefix>/bin/pin-preload launcher, the systemd units and an example config.
#
# usage: ./install.sh [--prefix DIR] [--root DIR] [--runtime crio|containerd]
#   --prefix DIR   install prefix (default /usr/local; on RHCOS /usr/local is writable, /usr is not)
#   --root DIR     install into DIR as if it were / (for tests and image builds; DESTDIR=DIR works too)
#   --runtime R    crio (default) or containerd: containerd also installs the unit drop-in for containerd
# Re-running it upgrades in place and never touches an existing /etc/pin-preload/config.toml.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
prefix=/usr/local
root="${DESTDIR:-}"
runtime=crio
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --runtime) runtime="${2:?--runtime needs crio or containerd}"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$runtime" in crio|containerd) ;; *) echo "install.sh: --runtime must be crio or containerd, not $runtime" >&2; exit 2 ;; esac
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be an absolute path, not $prefix" >&2; exit 2 ;; esac
prefix="${prefix%/}"
root="${root%/}"

fail() { echo "install.sh: $*" >&2; exit 1; }

[ -f "$here/build-info.env" ] && [ -d "$here/app" ] || fail "run me from the unpacked package directory (build-info.env and app/ are missing next to me)"
# build-info.env is written by scripts/package.sh: PIN_PRELOAD_VERSION, NODE_MAJOR, ARCH, INCLUDES_NODE, ...
. "$here/build-info.env"

# --- the node that will run the app ---------------------------------------------------------------------
# better-sqlite3 is a native addon compiled for one Node.js major version: any other major cannot load it.
machine_arch="$(uname -m)"
case "$machine_arch" in x86_64) machine_arch=x64 ;; aarch64) machine_arch=arm64 ;; ppc64le) machine_arch=ppc64 ;; esac
[ "$machine_arch" = "$ARCH" ] || fail "this package is for linux-$ARCH but this machine is $(uname -m); build the package on a $(uname -m) machine"

if [ "$INCLUDES_NODE" = 1 ]; then
  node_bin="$here/app/node/bin/node"
  node_source="the Node.js included in this package"
else
  node_bin="$(command -v node 2>/dev/null || true)"
  node_source="node on PATH ($node_bin)"
  [ -n "$node_bin" ] || fail "no Node.js found. This package needs Node.js $NODE_MAJOR (>= 20.18.1) on the node's PATH.
  RHCOS and other nodes without Node.js: use the package built with \`npm run package -- --include-node\`, which carries its own node."
fi
node_version="$("$node_bin" --version 2>/dev/null)" || fail "$node_source does not run on this machine"
node_version="${node_version#v}"
node_major="${node_version%%.*}"
[ "$node_major" = "$NODE_MAJOR" ] || fail "$node_source is v$node_version, but this package's native module (better-sqlite3) was built for Node.js $NODE_MAJOR.
  Install Node.js $NODE_MAJOR (>= 20.18.1), or use the package built with --include-node, or rebuild the package with Node.js $node_major."
node_rest="${node_version#*.}"
node_minor="${node_rest%%.*}"
node_patch="${node_rest#*.}"
if [ "$node_major" = 20 ] && { [ "$node_minor" -lt 18 ] || { [ "$node_minor" = 18 ] && [ "${node_patch%%[!0-9]*}" -lt 1 ]; }; }; then
  fail "$node_source is v$node_version; pin-preload needs Node.js >= 20.18.1"
fi

# The real test: load the native module with that node before touching anything. This catches what the
# version check cannot: a C library older than the build machine's (GLIBC_2.xx not found), a damaged copy.
load_error="$(cd "$here/app" && "$node_bin" -e "new (require('better-sqlite3'))(':memory:').close()" 2>&1)" \
  && load_status=0 || load_status=$?
if [ "$load_status" != 0 ]; then
  load_error="$(printf '%s\n' "$load_error" | grep -v -e '^ *at ' -e '^ *$' | head -n 5)"
  fail "$node_source cannot load this package's native module (better-sqlite3):
  ${load_error:-node exited with status $load_status}
  Build the package on a machine with the same or an older C library (glibc) than this node, e.g. on
  RHEL/UBI 9 for RHCOS 9 nodes; see docs/install.md."
fi

# --- the app ---------------------------------------------------------------------------------------------
lib="$root$prefix/lib/pin-preload"
bin="$root$prefix/bin"
units="$root/etc/systemd/system"
config_dir="$root/etc/pin-preload"

mkdir -p "$root$prefix/lib" "$bin" "$units" "$config_dir"
# Copy next to the old version, then swap: a failed copy leaves the installed version untouched.
rm -rf "$lib.new" "$lib.old"
cp -R "$here/app" "$lib.new"
chmod -R u=rwX,go=rX "$lib.new"
[ ! -e "$lib" ] || mv "$lib" "$lib.old"
mv "$lib.new" "$lib"
rm -rf "$lib.old"

# The launcher finds the app relative to itself, so it also works inside --root; it prefers the node
# shipped in the package over whatever node is on PATH.
launcher="$bin/pin-preload"
cat > "$launcher.new" <<'LAUNCHER'
#!/bin/sh
# pin-preload launcher, written by install.sh.
app="$(dirname "$(readlink -f "$0")")/../lib/pin-preload"
node=node
[ -x "$app/node/bin/node" ] && node="$app/node/bin/node"
exec "$node" "$app/dist/src/cli/main.js" "$@"
LAUNCHER
chmod 0755 "$launcher.new"
mv -f "$launcher.new" "$launcher"

# --- systemd units and config ----------------------------------------------------------------------------
# The units name /usr/local; point them at the chosen prefix.
install_unit() { # source, target
  sed "s|/usr/local/|$prefix/|g" "$1" > "$2.new"
  chmod 0644 "$2.new"
  mv -f "$2.new" "$2"
}
install_unit "$here/systemd/pin-preload.service" "$units/pin-preload.service"
install_unit "$here/systemd/pin-preload-import@.service" "$units/pin-preload-import@.service"
dropin_dir="$units/pin-preload.service.d"
if [ "$runtime" = containerd ]; then
  mkdir -p "$dropin_dir"
  install_unit "$here/systemd/10-containerd.conf" "$dropin_dir/10-containerd.conf"
  # The service may write in certs.d but cannot create it (/etc is read-only to it).
  mkdir -p "$root/etc/containerd/certs.d"
else
  rm -f "$dropin_dir/10-containerd.conf"
  rmdir "$dropin_dir" 2>/dev/null || true
fi

# The example is always refreshed (new keys show up there); the config itself is the operator's.
install -m 0644 "$here/systemd/config.toml.example" "$config_dir/config.toml.example"
config_state="kept your existing $config_dir/config.toml (compare with config.toml.example for new keys)"
if [ ! -e "$config_dir/config.toml" ]; then
  install -m 0644 "$here/systemd/config.toml.example" "$config_dir/config.toml"
  config_state="wrote $config_dir/config.toml from the example: review it"
fi

# SELinux (RHCOS): give the new files their default labels so systemd may execute them.
if [ -z "$root" ] && command -v restorecon >/dev/null 2>&1; then
  restorecon -R "$lib" "$launcher" "$units/pin-preload.service" "$units/pin-preload-import@.service" "$config_dir" 2>/dev/null || true
fi

echo "pin-preload $PIN_PRELOAD_VERSION installed into ${root:-}$prefix (Node.js v$node_version, runtime $runtime)"
echo "  $config_state"
echo "Next steps:"
echo "  1. edit /etc/pin-preload/config.toml (runtime kind and endpoint, bundle dir, mirror address)"
echo "  2. systemctl daemon-reload && systemctl enable --now pin-preload"
echo "  3. import a bundle: systemctl start \"pin-preload-import@\$(systemd-escape --path /path/to/bundle.tar).service\""
echo "  4. pin-preload status"
