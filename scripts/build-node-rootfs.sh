#!/usr/bin/env bash
# Builds the Debian 12 root filesystem that test/integration/systemd-node.test.ts boots with systemd as PID 1
# (systemd-nspawn --boot), cached in /var/cache/pin-preload/rootfs-bookworm and rebuilt only when missing.
# Needs root, debootstrap and the Debian archive (about two minutes); `.ci/run` calls it.
#
# The tree is built in a temp dir next to the cache and renamed into place in one step, so a crash never
# leaves a half-built rootfs that a later run would take for a finished one.
set -euo pipefail

CACHE_ROOT=${PIN_PRELOAD_CACHE_DIR:-/var/cache/pin-preload}
DEST=$CACHE_ROOT/rootfs-bookworm

# The finished marker is written last, inside the tree, before the rename.
if [ -f "$DEST/etc/pin-preload-test-rootfs" ]; then
  exit 0
fi

command -v debootstrap >/dev/null || { echo "build-node-rootfs: debootstrap is missing: apt-get install debootstrap systemd-container" >&2; exit 1; }
mkdir -p "$CACHE_ROOT"
WORK=$(mktemp -d "$CACHE_ROOT/.rootfs-bookworm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# systemd as PID 1 and its bus; ca-certificates because the node's tools expect a trust store; runc because
# containerd's CRI plugin looks for a runtime binary (pulling, all the test does, starts no container).
URI=$(bash "$(dirname "${BASH_SOURCE[0]}")/debian-archive-uri.sh" 2>&1) || { echo "build-node-rootfs: $URI" >&2; exit 1; }
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates,runc \
  bookworm "$WORK/root" "$URI" >"$WORK/debootstrap.log" 2>&1 || {
  tail -n 20 "$WORK/debootstrap.log" >&2
  echo "build-node-rootfs: debootstrap failed (log above)" >&2
  exit 1
}
# A booted test node needs no login prompt, no network configuration and no periodic jobs.
rm -f "$WORK/root/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
ln -sf /dev/null "$WORK/root/etc/systemd/system/console-getty.service"
ln -sf /dev/null "$WORK/root/etc/systemd/system/apt-daily.timer"
ln -sf /dev/null "$WORK/root/etc/systemd/system/apt-daily-upgrade.timer"
ln -sf /dev/null "$WORK/root/etc/systemd/system/dpkg-db-backup.timer"
echo pin-preload-node >"$WORK/root/etc/hostname"
rm -rf "$WORK/root/var/cache/apt/archives/"*.deb "$WORK/root/var/lib/apt/lists/"*
date -u +%FT%TZ >"$WORK/root/etc/pin-preload-test-rootfs"

rm -rf "$DEST.old"
if [ -e "$DEST" ]; then mv "$DEST" "$DEST.old"; fi
mv "$WORK/root" "$DEST"
rm -rf "$DEST.old"
echo "$DEST"
