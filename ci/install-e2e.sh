#!/usr/bin/env bash
# Install what the end-to-end suite (tests/e2e) needs, and nothing when it is already there:
#   - Debian's chromium package (the suite drives /usr/bin/chromium headless through playwright;
#     playwright's own browser download is never used);
#   - the e2e extra (the pinned JupyterLab, ipywidgets, ipympl, playwright) and the test extra
#     in .venv.
# Non-interactive (CI=true, no stdin). Without root, sudo or apt-get it warns and goes on: the
# e2e tests then skip, saying Chromium is missing.
# Usage: bash ci/install-e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
CHROMIUM=${COKERNEL_E2E_CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$CHROMIUM" ]; then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      as_root=(false)
    fi
  fi
  if [ "${as_root[*]}" = false ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-e2e: need root and apt-get to install chromium; the e2e tests will skip" >&2
  else
    echo "install-e2e: apt-get install chromium"
    if ! { "${as_root[@]}" apt-get update -qq </dev/null >/dev/null &&
           "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core </dev/null >/dev/null; }; then
      echo "install-e2e: apt-get install chromium failed; the e2e tests will skip" >&2
    fi
  fi
fi

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
# Versions, not just presence: the pins of the e2e extra are what the suite was written against.
if ! "$PY" - <<'PYCHECK'
import sys
from importlib.metadata import PackageNotFoundError, version
wanted = {"jupyterlab": "4.6.6", "playwright": "1.65.2", "ipywidgets": "8.1.9", "ipympl": "0.10.0"}
try:
    ok = all(version(name) == pin for name, pin in wanted.items()) and bool(version("cokernel"))
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PYCHECK
then
  echo "install-e2e: pip install -e '.[test,e2e]'"
  "$PY" -m pip install --quiet -e '.[test,e2e]' </dev/null
fi
echo "install-e2e: ready (chromium: $([ -x "$CHROMIUM" ] && "$CHROMIUM" --version 2>/dev/null | head -1 || echo missing))"
