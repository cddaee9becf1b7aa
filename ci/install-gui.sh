#!/usr/bin/env bash
# Install what the GUI tests (tests/gui) need, and nothing when it is already there:
#   - Debian packages: Xvfb and xauth (an X server for the Tk tests), and the libraries
#     Qt's offscreen platform loads (the Qt tests draw offscreen, without a server);
#   - Python packages: the qt extra (PySide6) and the test extra (matplotlib, ipympl) in .venv.
# Non-interactive (CI=true, no stdin). Without root, sudo or apt-get it warns and goes on: the
# Tk tests then skip, saying Xvfb is missing.
# Usage: bash ci/install-gui.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
PACKAGES=(xvfb xauth libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
elif ! command -v Xvfb >/dev/null 2>&1; then
  echo "install-gui: not a Debian system and no Xvfb on PATH: install Xvfb yourself" >&2
fi

if ((${#missing[@]})); then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      echo "install-gui: need root to install ${missing[*]}; the GUI tests that need them will skip" >&2
      missing=()
    fi
  fi
  if ((${#missing[@]})); then
    echo "install-gui: apt-get install ${missing[*]}"
    if ! { "${as_root[@]}" apt-get update -qq </dev/null >/dev/null &&
           "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null; }; then
      echo "install-gui: apt-get failed; the GUI tests that need ${missing[*]} will skip" >&2
    fi
  fi
fi

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
# find_spec, not import: the check stays quick when everything is installed.
if ! "$PY" - <<'PYCHECK'
import importlib.util, sys
needed = ("PySide6", "matplotlib", "ipympl", "matplotlib_inline", "cokernel")
sys.exit(0 if all(importlib.util.find_spec(name) for name in needed) else 1)
PYCHECK
then
  echo "install-gui: pip install -e '.[qt,test]'"
  "$PY" -m pip install --quiet -e '.[qt,test]' </dev/null
fi
echo "install-gui: ready (Xvfb: $(command -v Xvfb || echo missing))"
