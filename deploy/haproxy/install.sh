#!/usr/bin/env bash
# Prints the path of an HAProxy executable, installing Debian's package under var/tools/haproxy first
# when none is on PATH: `apt-get download` (no root needed) of haproxy and the libraries it links that
# a Debian/Ubuntu base lacks, unpacked with `dpkg-deb -x`, run through a wrapper that sets
# LD_LIBRARY_PATH. Idempotent: a second run only prints the path. Why not `apt-get install`: it needs
# root, and the production profile (scripts/run_production.sh) and its test run as a normal user.
# Needs apt's package lists (`apt-get update` once, as root, on a bare image).
set -euo pipefail
cd "$(dirname "$0")/../.."
if command -v haproxy >/dev/null 2>&1; then command -v haproxy; exit 0; fi
dest="$PWD/var/tools/haproxy"
wrapper="$dest/bin/haproxy"
if [ -x "$wrapper" ] && "$wrapper" -v >/dev/null 2>&1; then echo "$wrapper"; exit 0; fi
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
  echo "no haproxy on PATH and no apt-get/dpkg-deb to fetch Debian's package: install HAProxy >= 2.4" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# haproxy 2.6 (Debian 12) links Lua 5.3 and the OpenTracing wrapper, absent from a slim base image
(cd "$work" && apt-get download -q haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1 >&2) || {
  echo "apt-get download failed: run 'apt-get update' (as root) once, or install haproxy" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$dest/root" "$dest/bin"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$dest/root"; done
libdirs="$(find "$dest/root/usr/lib" -name '*.so*' -printf '%h\n' | sort -u | tr '\n' ':')"
cat >"$wrapper" <<EOF
#!/bin/sh
# HAProxy unpacked from Debian's packages by deploy/haproxy/install.sh
LD_LIBRARY_PATH="${libdirs}\${LD_LIBRARY_PATH:-}" exec "$dest/root/usr/sbin/haproxy" "\$@"
EOF
chmod +x "$wrapper"
if ! "$wrapper" -v >/dev/null 2>&1; then
  echo "the unpacked haproxy does not run (a library missing?):" >&2
  LD_LIBRARY_PATH="$libdirs" ldd "$dest/root/usr/sbin/haproxy" | grep 'not found' >&2 || "$wrapper" -v >&2 || true
  exit 1
fi
# not `| head -1`: under pipefail, haproxy killed by SIGPIPE after head exits fails the script
version="$("$wrapper" -v)"
echo "${version%%$'\n'*}" >&2
echo "$wrapper"
