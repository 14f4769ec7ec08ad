#!/usr/bin/env bash
# Builds the .deb from a configured build tree and checks it as a user would meet it: lintian
# (errors fail, warnings are listed), dpkg -i on this machine, the installed canserver --version,
# systemd-analyze verify on both units, then dpkg --purge. Needs root (exit 77: skipped).
# Usage: scripts/test-deb.sh BUILD_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"
if [ "$(id -u)" -ne 0 ]; then echo "test-deb: needs root for dpkg -i; skipped"; exit 77; fi
if dpkg-query -W -f='${Status}' canserver 2>/dev/null | grep -q "install ok installed"; then
  echo "test-deb: a canserver package is already installed here; not touching it"; exit 77
fi
out="$(mktemp -d)"
trap 'dpkg --purge canserver >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
(cd "$out" && cpack --config "$build/CPackConfig.cmake" -B "$out" >/dev/null)
deb="$(ls "$out"/canserver_*_*.deb)"
echo "test-deb: $(basename "$deb"), $(stat -c %s "$deb") bytes"
dpkg-deb -f "$deb" Depends | sed 's/^/test-deb: Depends: /'

lintian --tag-display-limit 0 "$deb" 2>&1 | grep -v "running with root privileges" | tee "$out/lintian.txt" || true
if grep -q "^E:" "$out/lintian.txt"; then echo "test-deb: lintian errors"; exit 1; fi
echo "test-deb: lintian: $(grep -c '^W:' "$out/lintian.txt" || true) warnings"

dpkg -i "$deb" >/dev/null
version="$(/usr/bin/canserver --version)"
expected="canserver $(dpkg-deb -f "$deb" Version)"
[ "$version" = "$expected" ] || { echo "test-deb: '$version', expected '$expected'"; exit 1; }
/usr/bin/canremote --version >/dev/null
/usr/bin/canbench --version >/dev/null
[ -f /etc/canserver/canserver.conf ] || { echo "test-deb: no /etc/canserver/canserver.conf"; exit 1; }
grep -qx /etc/canserver/canserver.conf /var/lib/dpkg/info/canserver.conffiles
# The man pages are in the package (checked there: minimal images exclude /usr/share/man).
dpkg-deb -c "$deb" | grep -q "usr/share/man/man1/canserver.1.gz"
for unit in canserver.service canserver@can0.service; do
  if ! systemd-analyze verify "$unit" > "$out/verify.txt" 2>&1 || [ -s "$out/verify.txt" ]; then
    echo "test-deb: systemd-analyze verify $unit:"; cat "$out/verify.txt"; exit 1
  fi
done
echo "test-deb: installed, $version, units verified; purging"
