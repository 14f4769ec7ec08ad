#!/usr/bin/env bash
# Installs the python-can plugin (offline, from this tree) into the build tree and runs the
# python-can tests against the build's canserver. Usage: run.sh SOURCE_DIR BUILD_DIR [4.6.1]
#   without a version: Debian's python3-can (4.1);
#   4.6.1: python-can 4.6.1 from ../shared/clients/ (what PyPI users have), in a virtual
#   environment beside Debian's packages, as ../shared/clients/README.md says; exits 77 (ctest:
#   skipped) where that tarball is not there.
set -euo pipefail
src="$1"
build="$2"
version="${3:-}"
python=/usr/bin/python3
site="$build/python-site"
if [ -n "$version" ]; then
  tarball="$src/../shared/clients/python-can-$version.tar.gz"
  if [ ! -f "$tarball" ]; then
    echo "run.sh: $tarball is not there: python-can $version not tested" >&2
    exit 77
  fi
  venv="$build/python-can-$version"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import can" 2>/dev/null; then
    rm -rf "$venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    sp=$("$venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')
    tar -xzf "$tarball" -C "$sp" --strip-components=1 "python-can-$version/can"
    mkdir -p "$sp/python_can-$version.dist-info"
    printf 'Metadata-Version: 2.1\nName: python-can\nVersion: %s\n' "$version" \
      > "$sp/python_can-$version.dist-info/METADATA"
    : > "$sp/python_can-$version.dist-info/RECORD"
  fi
  python="$venv/bin/python"
  site="$build/python-site-$version"
fi
rm -rf "$site" "$site-src"
cp -r "$src/python" "$site-src"
rm -rf "$site-src/build" "$site-src"/*.egg-info  # a stale setuptools build would be installed instead
/usr/bin/python3 -m pip install -q --no-index --no-build-isolation --no-deps \
  --target "$site" "$site-src" 2>&1 | grep -v "Running pip as the 'root' user" || true
export PYTHONPATH="$site" CANSERVER_BIN="$build/tools/canserver"
"$python" -c 'import can, sys; print("python-can", can.__version__, "from", can.__file__, file=sys.stderr)'
exec "$python" -W error::ResourceWarning "$src/tests/python/test_python_can.py"
