#!/usr/bin/env bash
# Builds the offline node install tarball: pin-preload-<version>-linux-<arch>-node<major>.tar.gz with the
# built app, its production node_modules (native better-sqlite3 compiled for this platform), the units,
# the example config, the docs and install.sh. Needs no network: it copies the installed tree and prunes it.
#
# usage: scripts/package.sh [--output-dir DIR (default dist/)] [--include-node]
#   run `npm run build` first (`npm run package` does both); --include-node also ships this machine's node
#   binary, so the target node (e.g. RHCOS, which has no Node.js) needs nothing else.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
output_dir="$repo/dist"  # build output, git-ignored
include_node=0
while [ $# -gt 0 ]; do
  case "$1" in
    --output-dir) output_dir="${2:?--output-dir needs a directory}"; shift 2 ;;
    --include-node) include_node=1; shift ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

cd "$repo"
for needed in dist/src/cli/main.js node_modules/better-sqlite3/build/Release/better_sqlite3.node package-lock.json; do
  if [ ! -e "$needed" ]; then
    echo "package.sh: $needed is missing: run \`npm ci\` and \`npm run build\` first (or \`npm run package\`)" >&2
    exit 1
  fi
done

# The native module is built for this node's ABI and this machine's architecture: the name says which.
version="$(node -p 'require("./package.json").version')"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
node_version="$(node -p 'process.versions.node')"
node_abi="$(node -p 'process.versions.modules')"
arch="$(node -p 'process.arch')"
name="pin-preload-${version}-linux-${arch}-node${node_major}"

staging="$(mktemp -d "${TMPDIR:-/tmp}/pin-preload-package.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
top="$staging/$name"
app="$top/app"
mkdir -p "$app/dist" "$app/docs" "$top/systemd"

# The app: only the compiled sources (dist/ also holds compiled tests and benchmarks).
cp -a dist/src "$app/dist/src"
cp package.json package-lock.json "$app/"

# Production dependencies: a copy of the installed tree without the dev dependencies the lockfile marks,
# so nothing is fetched or rebuilt and the compiled better-sqlite3 addon for this node is kept.
node scripts/copy-production-modules.mjs "$repo" "$app/node_modules"
# Same answer from npm itself: every production dependency present (fails on a missing one).
(cd "$app" && npm ls --omit=dev --all --offline --loglevel=error >/dev/null) || {
  echo "package.sh: the production dependency tree is incomplete (npm ls above); run \`npm ci\` and retry" >&2
  exit 1
}

if [ "$include_node" = 1 ]; then
  mkdir -p "$app/node/bin"
  cp "$(node -p 'process.execPath')" "$app/node/bin/node"
  chmod 0755 "$app/node/bin/node"
fi

cp systemd/pin-preload.service systemd/pin-preload-import@.service systemd/10-containerd.conf \
  systemd/config.toml.example "$top/systemd/"
if [ -f docs/install.md ]; then cp docs/install.md "$app/docs/"; fi
cp scripts/install.sh "$top/install.sh"
chmod 0755 "$top/install.sh"

# Read by install.sh (and by people): what this package was built for.
cat > "$top/build-info.env" <<INFO
PIN_PRELOAD_VERSION=$version
BUILT_WITH_NODE=$node_version
NODE_MAJOR=$node_major
NODE_MODULE_ABI=$node_abi
ARCH=$arch
INCLUDES_NODE=$include_node
INFO

mkdir -p "$output_dir"
tarball="$(cd "$output_dir" && pwd)/$name.tar.gz"
# Owner root and a fixed order, so the tarball does not depend on who built it; temp name, then rename.
tar -C "$staging" --sort=name --owner=0 --group=0 --numeric-owner -czf "$tarball.partial" "$name"
mv -f "$tarball.partial" "$tarball"
echo "$tarball"
