#!/usr/bin/env bash
# Prints the Debian archive host this machine's apt already uses: the first URI of a Debian (non-security)
# source, from deb822 sources or the one-line format. The scripts that fetch from Debian for the tests
# (fetch-containerd-1.7.sh, build-node-rootfs.sh) use it, so no host is written into the repository.
set -euo pipefail

if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
    /etc/apt/sources.list.d/debian.sources)
  if [ -n "$uri" ]; then echo "$uri"; exit 0; fi
fi
if [ -f /etc/apt/sources.list ]; then
  uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' \
    /etc/apt/sources.list)
  if [ -n "$uri" ]; then echo "$uri"; exit 0; fi
fi
echo "no Debian archive URI in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list; add one, then run again" >&2
exit 1
