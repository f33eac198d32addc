#!/usr/bin/env bash
# Fetches Debian 13's containerd 1.7 into /var/cache/pin-preload/containerd-1.7 (unpacked, not installed), so
# the tests and the demo can run a runtime that pins images: containerd 1.6 (Debian 12) never reports an image
# pinned, 1.7 does for images labelled io.cri-containerd.pinned=pinned. The binary runs on Debian 12 as is.
#
# Idempotent: does nothing when the cached binary exists and runs. Otherwise it uses a private apt directory
# (its own sources list: trixie main on the archive host the system's Debian sources already use, signed by
# debian-archive-keyring, which carries trixie's key) so the system's apt state is never changed, and renames
# the unpacked tree into place in one step, so a crash never leaves a half-filled cache directory behind.
# PIN_PRELOAD_CACHE_DIR replaces /var/cache/pin-preload (then point PIN_PRELOAD_CONTAINERD_1_7 at the binary).
set -euo pipefail

CACHE_ROOT=${PIN_PRELOAD_CACHE_DIR:-/var/cache/pin-preload}
DEST=$CACHE_ROOT/containerd-1.7
BIN=$DEST/usr/bin/containerd
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
  exit 0
fi

if [ ! -r "$KEYRING" ]; then
  echo "fetch-containerd-1.7: $KEYRING is missing; apt-get install debian-archive-keyring, then run again" >&2
  exit 1
fi

URI=$(bash "$(dirname "${BASH_SOURCE[0]}")/debian-archive-uri.sh" 2>&1) || { echo "fetch-containerd-1.7: $URI" >&2; exit 1; }
mkdir -p "$CACHE_ROOT"
WORK=$(mktemp -d "$CACHE_ROOT/.containerd-1.7.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/apt/sources.list.d" "$WORK/debs" "$WORK/root"
echo "deb [signed-by=$KEYRING] $URI trixie main" >"$WORK/apt/sources.list"

APT_OPTS=(
  -o "Dir::Etc::SourceList=$WORK/apt/sources.list"
  -o "Dir::Etc::SourceParts=$WORK/apt/sources.list.d"
  -o "Dir::State::Lists=$WORK/apt/lists"
  -o "Dir::Cache=$WORK/apt/cache"
  # The private directory is root's; apt's _apt sandbox user could not write into it.
  -o "APT::Sandbox::User=root"
)
if ! apt-get "${APT_OPTS[@]}" -qq update; then
  echo "fetch-containerd-1.7: apt-get update of trixie from $URI failed; is debian-archive-keyring 2023.3+deb12u2 or later (it carries trixie's key) installed?" >&2
  exit 1
fi
# Only containerd: trixie's package declares runc (>= 0.1.0~) and libc6 (>= 2.34), which Debian 12's runc 1.1.5
# and libc 2.36 satisfy (and pulling images, all the tests do with it, runs no container).
(cd "$WORK/debs" && apt-get "${APT_OPTS[@]}" -qq download containerd)
for deb in "$WORK"/debs/*.deb; do
  dpkg -x "$deb" "$WORK/root"
done
"$WORK/root/usr/bin/containerd" --version >/dev/null

rm -rf "$DEST.old"
if [ -e "$DEST" ]; then mv "$DEST" "$DEST.old"; fi
mv "$WORK/root" "$DEST"
rm -rf "$DEST.old"
"$BIN" --version
