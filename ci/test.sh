#!/usr/bin/env bash
# Install cokernel with its test extras into .venv and run every check CI runs:
# lint (ruff), formatting (ruff format), types (mypy --strict) and the pytest suite.
# Usage: bash ci/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e '.[test,bench]'

echo "== ruff check"
.venv/bin/ruff check kernel harness scenarios tests
echo "== ruff format --check"
.venv/bin/ruff format --check kernel harness scenarios tests
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
# Jupyter and IPython state of the test run stays out of the user's home.
export JUPYTER_PLATFORM_DIRS=1
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
