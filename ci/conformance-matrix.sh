#!/usr/bin/env bash
# Regenerate the conformance matrix (docs/conformance/matrix.html) for every Python kernel that
# installs from the package index: cokernel (asyncio, trio), ipykernel 7.x and 6.x, async-kernel,
# akernel and xeus-python.
#
#   bash ci/conformance-matrix.sh                  # all kernels
#   KERNELS="ipykernel6 akernel" bash ci/conformance-matrix.sh -k interrupt
#
# Extra arguments go to every `cokernel-harness conformance` run. Each other kernel gets a venv
# of its own under $MATRIX_CACHE (default .cache/matrix), and its kernelspec is written under a
# distinct name into $MATRIX_CACHE/prefix/share/jupyter/kernels, pointing at that venv's
# executables; the harness (in .venv) finds them through JUPYTER_PATH. A kernel that cannot be
# installed or started gets a "could not start" column with the reason; the run goes on. The
# page is made from the reports of all kernels in $OUT/json, so re-running one kernel (KERNELS)
# updates its column only.
set -uo pipefail
cd "$(dirname "$0")/.."

CACHE=${MATRIX_CACHE:-.cache/matrix}
PREFIX="$CACHE/prefix"
OUT=${MATRIX_OUT:-docs/conformance}
ALL="cokernel cokernel-trio ipykernel7 ipykernel6 async-kernel akernel xeus-python"
KERNELS=${KERNELS:-$ALL}
PY=${PYTHON:-python3}
mkdir -p "$PREFIX/share/jupyter/kernels" "$OUT/json" "$CACHE/logs"
CACHE=$(cd "$CACHE" && pwd)
PREFIX=$(cd "$PREFIX" && pwd)
export JUPYTER_PATH="$PREFIX/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
export JUPYTER_PLATFORM_DIRS=1
HARNESS=.venv/bin/cokernel-harness
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# pip spec, and the module or program the kernelspec is copied from
declare -A PIP=(
  [ipykernel7]="ipykernel>=7,<8"
  [ipykernel6]="ipykernel>=6,<7"
  [async-kernel]="async-kernel"
  [akernel]="akernel[subprocess]"  # the extra brings what its launcher imports (zmq, cyclopts)
  [xeus-python]="xeus-python"
)
declare -A LABEL=(
  [cokernel]="cokernel (asyncio)" [cokernel-trio]="cokernel (trio)" [ipykernel7]="ipykernel 7"
  [ipykernel6]="ipykernel 6" [async-kernel]="async-kernel" [akernel]="akernel"
  [xeus-python]="xeus-python"
)

# Write a report that says the kernel could not start, and why.
cannot_start() {  # name reason-file
  "$PY" - "$1" "${LABEL[$1]}" "$2" "$OUT/json/$1.json" <<'EOF'
import json, sys
name, label, reason_file, out = sys.argv[1:]
reason = open(reason_file, errors="replace").read().strip()[-2000:] or "no output"
json.dump({"kernel": name, "label": label, "error": reason, "results": []}, open(out, "w"), indent=2)
EOF
}

# Copy the kernelspec the package installed in its venv under our name, with absolute paths.
adopt_spec() {  # name venv
  "$PY" - "$1" "$2" "$PREFIX/share/jupyter/kernels" <<'EOF'
import json, os, pathlib, shutil, sys
name, venv, dest = sys.argv[1], pathlib.Path(sys.argv[2]).resolve(), pathlib.Path(sys.argv[3])
# the plain spec when a package ships variants (xeus-python: xpython and xpython-raw)
specs = sorted((venv / "share/jupyter/kernels").glob("*/kernel.json"), key=lambda p: len(str(p)))
if not specs:
    sys.exit(f"{name}: the package installed no kernelspec in {venv}/share/jupyter/kernels")
src = specs[0].parent
target = dest / name
shutil.rmtree(target, ignore_errors=True)
shutil.copytree(src, target)
spec = json.loads((target / "kernel.json").read_text())
argv = spec["argv"]
program = argv[0].replace("{prefix}", str(venv))
if not os.path.isabs(program):
    program = str(venv / "bin" / os.path.basename(program))
if os.path.basename(program).startswith("python"):
    program = str(venv / "bin" / "python")
spec["argv"] = [program] + [a.replace("{prefix}", str(venv)) for a in argv[1:]]
spec["display_name"] = f"{spec.get('display_name', name)} [{name}]"
(target / "kernel.json").write_text(json.dumps(spec, indent=2))
print(f"{name}: {spec['argv']}")
EOF
}

version_of() {  # python package
  "$1" -c "import importlib.metadata as m, platform; print('$2', m.version('$2') + ',', 'Python', platform.python_version())" 2>/dev/null
}

prepare() {  # name -> sets VERSIONS, returns non-zero with the reason in $CACHE/logs/NAME.err
  local name=$1 err="$CACHE/logs/$1.err"
  : >"$err"
  case "$name" in
    cokernel)
      VERSIONS=$(version_of .venv/bin/python cokernel) ;;
    cokernel-trio)
      .venv/bin/cokernel install --name cokernel-trio --backend trio --prefix "$PREFIX" \
        >/dev/null 2>>"$err" || return 1
      VERSIONS="$(version_of .venv/bin/python cokernel), trio $(.venv/bin/python -c 'import trio; print(trio.__version__)')" ;;
    *)
      local venv="$CACHE/venv-$name"
      if [ ! -x "$venv/bin/python" ]; then
        "$PY" -m venv "$venv" 2>>"$err" || return 1
      fi
      "$venv/bin/python" -m pip install --quiet "${PIP[$name]}" >>"$err" 2>&1 || return 1
      adopt_spec "$name" "$venv" >>"$err" 2>&1 || return 1
      local module=${PIP[$name]%%[<>=[]*}
      VERSIONS=$(version_of "$venv/bin/python" "$module") ;;
  esac
}

for name in $KERNELS; do
  echo "== $name"
  VERSIONS=""
  if ! prepare "$name"; then
    echo "   could not install: $(tail -n 3 "$CACHE/logs/$name.err")"
    cannot_start "$name" "$CACHE/logs/$name.err"
    continue
  fi
  json="$OUT/json/$name.json"
  rm -f "$json"
  "$HARNESS" conformance --kernel "$name" --json "$json" -q "$@" >"$CACHE/logs/$name.out" 2>&1
  if [ ! -s "$json" ]; then
    cannot_start "$name" "$CACHE/logs/$name.out"
    continue
  fi
  "$PY" - "$json" "${LABEL[$name]}" "$VERSIONS" <<'EOF'
import json, sys
path, label, versions = sys.argv[1:]
report = json.load(open(path))
report.update(label=label, versions=versions)
json.dump(report, open(path, "w"), indent=2)
print("  ", ", ".join(f"{n} {k}" for k, n in report["counts"].items() if n))
EOF
done

made=$(date -u +"%Y-%m-%d %H:%M UTC")
intro="<p>Made $made by <code>bash ci/conformance-matrix.sh</code> on $(nproc) CPUs, load average (1, 5, 15 min) $LOAD_START at the start of this run and $(cut -d' ' -f1-3 /proc/loadavg) at its end, harness cokernel $(version_of .venv/bin/python cokernel | cut -d' ' -f2-). Each column: one kernel, its versions under its name.</p>"
files=()  # the page shows every kernel run so far, also those of earlier runs
for name in $ALL; do
  [ -s "$OUT/json/$name.json" ] && files+=("$OUT/json/$name.json")
done
.venv/bin/python -m cokernel_harness.matrix "$OUT/matrix.html" "${files[@]}" \
  --title "Conformance matrix" --intro "$intro"
echo "wrote $OUT/matrix.html"
