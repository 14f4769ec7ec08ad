#!/usr/bin/env bash
# Installs the python-can plugin (offline, from this tree) into the build tree and runs the
# python-can tests against the build's canserver. Usage: run.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src="$1"
build="$2"
rm -rf "$build/python-src" "$build/python-site"
cp -r "$src/python" "$build/python-src"
/usr/bin/python3 -m pip install -q --no-index --no-build-isolation --no-deps \
  --target "$build/python-site" "$build/python-src" 2>&1 | grep -v "Running pip as the 'root' user" || true
export PYTHONPATH="$build/python-site" CANSERVER_BIN="$build/tools/canserver"
exec /usr/bin/python3 -W error::ResourceWarning "$src/tests/python/test_python_can.py"
