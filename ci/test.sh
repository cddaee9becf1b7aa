#!/usr/bin/env bash
# Install cokernel with its test extras into .venv and run every check CI runs:
# lint (ruff), formatting (ruff format), types (mypy --strict), then the pytest suite on the
# CI matrix: backend {asyncio, trio} x host {none, tk (Xvfb), qt (offscreen)}.
#
#   bash ci/test.sh                 # everything
#   bash ci/test.sh -k interrupt -x # extra arguments go to every pytest run
#   AXES=asyncio bash ci/test.sh    # only the asyncio axis (AXES="asyncio trio" by default)
#
# The asyncio axis runs the whole suite; the trio axis re-runs every test that starts a
# "cokernel" kernel with COKERNEL_TEST_BACKEND=trio (of tests/remote, the launcher's; the
# server -> gateway -> kernel chain runs on the asyncio axis). The GUI hosts (tests/gui) cover both
# backends for tk and qt inside each run.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
echo "== install"
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
# gateway: Jupyter Server + Kernel Gateway (tests/remote: the remote-kernel chain and the
# Enterprise Gateway launcher)
.venv/bin/python -m pip install --quiet -e '.[test,bench,qt,gateway]'
echo "== GUI test dependencies"
bash ci/install-gui.sh

echo "== ruff check"
.venv/bin/ruff check kernel harness scenarios tests examples
echo "== ruff format --check"
.venv/bin/ruff format --check kernel harness scenarios tests examples
echo "== mypy --strict"
.venv/bin/mypy

# Jupyter and IPython state of the test run stays out of the user's home (the suite's
# conftest also points IPYTHONDIR and the runtime dir at temporary folders).
export JUPYTER_PLATFORM_DIRS=1
AXES=${AXES:-"asyncio trio"}
status=0
for axis in $AXES; do
  echo "== pytest (backend: $axis)"
  if [ "$axis" = asyncio ]; then
    COKERNEL_TEST_BACKEND=asyncio .venv/bin/python -m pytest -q -p no:cacheprovider "$@" || status=$?
  else
    COKERNEL_TEST_BACKEND="$axis" .venv/bin/python -m pytest -q -p no:cacheprovider \
      tests/kernel tests/shell tests/scenarios tests/remote/test_eg_launcher.py "$@" || status=$?
  fi
done
exit "$status"
