#!/usr/bin/env bash
# Install cokernel with its test extras into .venv and run every check CI runs:
# lint (ruff), formatting (ruff format), types (mypy --strict), the docs site (mkdocs build
# --strict), then the pytest suite on the CI matrix: backend {asyncio, trio} x host {none,
# tk (Xvfb), qt (offscreen)}.
#
#   bash ci/test.sh                 # everything
#   bash ci/test.sh -k interrupt -x # extra arguments go to every pytest run
#   AXES=asyncio bash ci/test.sh    # only the asyncio axis (AXES="asyncio trio" by default)
#   E2E=0 bash ci/test.sh           # without the end-to-end step (real JupyterLab in Chromium)
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
.venv/bin/python -m pip install --quiet -e '.[test,bench,qt,docs,gateway]'
echo "== GUI test dependencies"
bash ci/install-gui.sh

echo "== ruff check"
.venv/bin/ruff check kernel harness scenarios tests examples
echo "== ruff format --check"
.venv/bin/ruff format --check kernel harness scenarios tests examples
echo "== mypy --strict"
.venv/bin/mypy
echo "== docs: mkdocs build --strict"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir .venv/docs-site

# Jupyter and IPython state of the test run stays out of the user's home (the suite's
# conftest also points IPYTHONDIR and the runtime dir at temporary folders).
export JUPYTER_PLATFORM_DIRS=1
AXES=${AXES:-"asyncio trio"}
# The differential corpus (tests/differential) runs ipykernel once: later axes reuse its results.
DIFFERENTIAL_IPYKERNEL_CACHE=$(mktemp -d)
export DIFFERENTIAL_IPYKERNEL_CACHE
trap 'rm -rf "$DIFFERENTIAL_IPYKERNEL_CACHE"' EXIT
status=0
for axis in $AXES; do
  echo "== pytest (backend: $axis)"
  if [ "$axis" = asyncio ]; then
    COKERNEL_TEST_BACKEND=asyncio .venv/bin/python -m pytest -q -p no:cacheprovider \
      --ignore=tests/e2e "$@" || status=$?
  else
    COKERNEL_TEST_BACKEND="$axis" .venv/bin/python -m pytest -q -p no:cacheprovider \
      tests/kernel tests/shell tests/scenarios tests/differential \
      tests/remote/test_eg_launcher.py "$@" || status=$?
  fi
done

# The end-to-end suite drives a real, pinned JupyterLab in Debian's headless Chromium; each of
# its tests runs on the asyncio and the trio kernelspec within this one run (tests/e2e).
if [ "${E2E:-1}" != 0 ]; then
  echo "== e2e (JupyterLab in headless Chromium; asyncio and trio kernels)"
  bash ci/install-e2e.sh
  # Exit 5 (no test selected, e.g. by a -k meant for the other runs) is not a failure here.
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/e2e "$@" || {
    rc=$?
    [ "$rc" -eq 5 ] || status=$rc
  }
fi
exit "$status"
