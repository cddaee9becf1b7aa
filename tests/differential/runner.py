"""Run the differential corpus with nbclient and reduce each cell to what a user sees.

A notebook runs in a directory of its own (its cwd, with its own IPYTHONDIR), under the real
nbclient ``NotebookClient``, with ``allow_errors`` so one failing cell never hides the next. The
result of a cell is its final outputs (after nbclient applied ``update_display_data`` and
``clear_output``), the outputs each Output widget gained while the cell ran (including after a
simulated slider change), and the model names of the widgets the cell created.

:func:`normalize_text` removes what legitimately changes between two runs of one kernel:
addresses, timings, temporary paths, widget model ids, ANSI colours, kernel-internal traceback
frames and the names kernels give cell files.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete
from nbclient.output_widget import OutputWidget

NOTEBOOKS = Path(__file__).parent / "notebooks"
CELL_TIMEOUT = 60
STARTUP_TIMEOUT = 60
# Widget states and outputs that belong to no user-visible result.
WIDGET_OUTPUT_MODEL = "OutputModel"

Json = Any


@dataclass
class CellResult:
    """What one code cell showed, normalized."""

    id: str
    source: str
    outputs: list[Json]
    widgets: dict[str, Json] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)

    def view(self) -> Json:
        """The comparable part of the cell, as plain JSON."""
        view: dict[str, Json] = {"outputs": self.outputs}
        if self.widgets:
            view["widgets"] = self.widgets
        if self.created:
            view["created"] = self.created
        return view


@dataclass
class NotebookResult:
    name: str
    kernel: str
    cells: dict[str, CellResult]
    seconds: float
    error: str | None = None
    cell_seconds: dict[str, float] = field(default_factory=dict)


# -- normalization -------------------------------------------------------------------------------
def _package_dirs(*names: str) -> tuple[str, ...]:
    """Directories of the kernels' own machinery: frames there are not the user's."""
    found = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if module.__file__ is not None:
            found.append(str(Path(module.__file__).parent) + os.sep)
    return tuple(found)


KERNEL_DIRS = _package_dirs(
    "cokernel", "ipykernel", "IPython.core", "anyio", "trio", "comm", "ipywidgets.widgets"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,16}")
_MODEL_ID = re.compile(r"\b[0-9a-f]{32}\b")
_TIME_UNIT = r"(?:ns|µs|μs|us|ms|s|min|h)"
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_TIMING = re.compile(rf"\b{_NUMBER} ?{_TIME_UNIT}(?![A-Za-z])")
_CELL_IN = re.compile(r"Cell In\[\d+\]")
_INPUT_IN = re.compile(r"Input In \[\d+\]")
_CELL_FILE = re.compile(r"/tmp/(?:ipykernel|cokernel)_\d+/\d+\.py")
_SYNTAX_FILE = re.compile(r"\(\d+\.py, line (\d+)\)")
_SVG_DATE = re.compile(r"<dc:date>[^<]*</dc:date>")
_KERNEL_FILE_LINE = re.compile(r"(?P<path>/[^\s\"':]+\.py)(?P<sep>:|\", line )(?P<line>\d+)")
_TEXT_FRAME = re.compile(r'^(?P<indent>[ |]*)File "(?P<path>[^"]+)", line \d+, in ')


def _is_kernel_path(path: str) -> bool:
    return path.startswith(KERNEL_DIRS)


def _kernel_path_line(match: re.Match[str]) -> str:
    if not _is_kernel_path(match.group("path")):
        return match.group(0)
    return f"<KERNEL>{match.group('sep')}N"


def normalize_text(text: str, replacements: Sequence[tuple[str, str]] = ()) -> str:
    """Erase what differs between two runs of the same kernel (see the module docstring)."""
    text = _ANSI.sub("", text)
    text = _drop_text_frames(text)
    text = _KERNEL_FILE_LINE.sub(_kernel_path_line, text)
    for old, new in replacements:
        if old:
            text = text.replace(old, new)
    text = _ADDRESS.sub("0xADDRESS", text)
    text = _TIMING.sub("TIME", text)
    text = _CELL_IN.sub("Cell In[N]", text)
    text = _INPUT_IN.sub("Input In [N]", text)
    text = _CELL_FILE.sub("CELLFILE", text)
    text = _SYNTAX_FILE.sub(r"(CELLFILE, line \1)", text)
    return _SVG_DATE.sub("<dc:date>DATE</dc:date>", text)


def _drop_text_frames(text: str) -> str:
    """In a plain-text traceback (printed to stderr), drop the frames of kernel machinery."""
    if 'File "' not in text:
        return text
    kept: list[str] = []
    skipping: str | None = None
    for line in text.splitlines(keepends=True):
        if skipping is not None:
            if line.startswith(skipping + " ") and not _TEXT_FRAME.match(line):
                continue  # the source lines and carets of the dropped frame
            skipping = None
        frame = _TEXT_FRAME.match(line)
        if frame and _is_kernel_path(frame.group("path")):
            skipping = frame.group("indent")
            continue
        kept.append(line)
    return "".join(kept)


class _ModelNames:
    """Widget model ids renamed in order of first appearance: widget-1, widget-2, ..."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def name(self, model_id: str) -> str:
        if model_id not in self.names:
            self.names[model_id] = f"widget-{len(self.names) + 1}"
        return self.names[model_id]

    def sub(self, text: str) -> str:
        return _MODEL_ID.sub(
            lambda m: self.names[m.group(0)] if m.group(0) in self.names else m.group(0), text
        )


_HIDDEN_FRAMES = re.compile(r"^\s*\[\.\.\. skipping hidden \d+ frames?\]\s*$")


def _drop_kernel_frames(traceback: list[str]) -> list[str]:
    """Frames of the kernels' own machinery (and IPython's "hidden frames" markers, which stand
    for frames a kernel marked ``__tracebackhide__``) are not the user's: keep only the rest."""
    kept = []
    for frame in traceback:
        plain = _ANSI.sub("", frame)
        path = re.match(r"^File (?P<path>/[^:]+\.py):\d+, in ", plain)
        if path and _is_kernel_path(path.group("path")):
            continue
        if _HIDDEN_FRAMES.match(plain):
            continue
        kept.append(frame)
    return kept


def normalize_outputs(outputs: Sequence[Json], fix: Any) -> list[Json]:
    """A cell's outputs as comparable JSON. Adjacent stream outputs of one name are merged:
    frontends show them as one block, and where a kernel splits a write is not visible."""
    merged: list[Json] = []
    for output in outputs:
        out = copy.deepcopy(dict(output))
        if (
            out["output_type"] == "stream"
            and merged
            and merged[-1]["output_type"] == "stream"
            and merged[-1]["name"] == out["name"]
        ):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(out)
    return [normalize_output(output, fix) for output in merged]


def normalize_output(output: Json, fix: Any) -> Json:
    """One nbformat output as comparable JSON; ``fix`` normalizes a string."""
    out = copy.deepcopy(dict(output))
    out.pop("execution_count", None)
    kind = out["output_type"]
    if kind == "stream":
        out["text"] = fix(out["text"])
    elif kind == "error":
        out["evalue"] = fix(out["evalue"])
        out["traceback"] = [fix(line) for line in _drop_kernel_frames(out["traceback"])]
    else:
        out["data"] = {mime: _fix_json(value, fix) for mime, value in out.get("data", {}).items()}
        out["metadata"] = _fix_json(out.get("metadata", {}), fix)
        if not out["metadata"]:
            del out["metadata"]
    return out


def _fix_json(value: Json, fix: Any) -> Json:
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, list):
        return [_fix_json(item, fix) for item in value]
    if isinstance(value, dict):
        return {fix(key): _fix_json(item, fix) for key, item in value.items()}
    return value


# -- running -------------------------------------------------------------------------------------
class DifferentialClient(NotebookClient):  # type: ignore[misc]
    """nbclient's NotebookClient plus a frontend's slider drag and per-cell widget snapshots."""

    def __init__(self, nb: Any, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.on_cell_start = self._before_cell
        self.on_cell_executed = self._after_cell
        self.created: dict[str, list[str]] = {}
        self.widget_changes: dict[str, dict[str, Json]] = {}
        self._known_models: set[str] = set()
        self._before: dict[str, Json] = {}
        self._started = 0.0
        self.seconds: dict[str, float] = {}
        self._side: BlockingKernelClient | None = None
        self._code_cells_started = 0
        self.widget_registry["@jupyter-widgets/output"]["OutputModel"] = self._output_widget

    # nbclient's Output widget mimic sends its state updates with a plain (not awaited) send on
    # the shell socket of the client that executes the cells, while a coroutine of that client
    # waits in ``poll`` on the same socket for the execute_reply. The send can consume the edge
    # of the socket's edge-triggered file descriptor, and the poll then sleeps until its timeout
    # (nbclient's cell timeout: the cell "takes" 60 s; with no timeout it would never end). A
    # client-side race (pyzmq's asyncio poller and jupyter_client), not a kernel's: so the mimic
    # and the simulated slider send on a second connection's shell socket, which nothing polls.
    def side_client(self) -> BlockingKernelClient:
        if self._side is None:
            assert self.km is not None
            self._side = self.km.blocking_client()
            self._side.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        return self._side

    # cokernel warms jedi up on a thread once its first cell has run (cokernel.shell._warmup).
    # jedi's catch_warnings() changes the warning filters, and any change makes Python show a
    # "once" warning again: depending on when the warm-up ends, a repeated warning of a later
    # cell showed or did not (docs/compatibility.md). The corpus compares outputs, not timing:
    # before the second code cell, a silent request waits for the warm-up (a no-op on ipykernel).
    async def _wait_for_warm_up(self) -> None:
        side = self.side_client()
        code = (
            "import threading\n"
            "[t.join(60) for t in threading.enumerate() if t.name == 'cokernel-warmup']"
        )
        content = {"code": code, "silent": True, "store_history": False, "allow_stdin": False}
        msg = side.session.msg("execute_request", content)
        side.shell_channel.send(msg)
        deadline = asyncio.get_running_loop().time() + CELL_TIMEOUT
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError("no idle after the wait for the warm-up")
            seen = await self.kc.get_iopub_msg(timeout=remaining)
            if (
                seen["parent_header"].get("msg_id") == msg["header"]["msg_id"]
                and seen["msg_type"] == "status"
                and seen["content"]["execution_state"] == "idle"
            ):
                return

    def stop_side_client(self) -> None:
        if self._side is not None:
            self._side.stop_channels()
            self._side = None

    def _output_widget(
        self, comm_id: str, state: dict[str, Any], kc: Any, executor: Any
    ) -> OutputWidget:
        return OutputWidget(comm_id, state, self.side_client(), executor)

    def _output_states(self) -> dict[str, Json]:
        return {
            model_id: copy.deepcopy(state.get("outputs", []))
            for model_id, state in self.widget_state.items()
            if state.get("_model_name") == WIDGET_OUTPUT_MODEL
        }

    async def _before_cell(self, cell: Any, cell_index: int) -> None:
        if self._code_cells_started == 1:
            await self._wait_for_warm_up()
        self._code_cells_started += 1
        self._before = self._output_states()
        self._known_models = set(self.widget_state)
        self._started = asyncio.get_running_loop().time()

    async def _after_cell(self, cell: Any, cell_index: int, execute_reply: Any) -> None:
        update = cell.metadata.get("differential", {}).get("comm_update")
        if update is not None:
            await self._drag(cell, cell_index, update)
        cell_id = cell.get("id", str(cell_index))
        self.created[cell_id] = [
            str(state.get("_model_name"))
            for model_id, state in self.widget_state.items()
            if model_id not in self._known_models
        ]
        after = self._output_states()
        self.seconds[cell_id] = asyncio.get_running_loop().time() - self._started
        self.widget_changes[cell_id] = {
            model_id: outputs
            for model_id, outputs in after.items()
            if outputs != self._before.get(model_id, [])
        }

    async def _drag(self, cell: Any, cell_index: int, update: dict[str, Any]) -> None:
        """Send what a frontend sends when the user moves a widget, and take in the outputs."""
        matching = [
            model_id
            for model_id, state in self.widget_state.items()
            if state.get("_model_name") == update["model"]
        ]
        if not matching:
            cell.outputs.append(
                nbformat.v4.new_output(
                    "stream", name="stderr", text=f"[runner] no {update['model']} to update\n"
                )
            )
            return
        content = {
            "comm_id": matching[-1],
            "data": {"method": "update", "state": update["state"], "buffer_paths": []},
        }
        side = self.side_client()
        msg = side.session.msg("comm_msg", content)
        side.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        # Outputs of the comm_msg are children of it; nbclient itself only reads outputs of the
        # execute_request, so feed them through its own message processing, until idle.
        deadline = asyncio.get_running_loop().time() + CELL_TIMEOUT
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no idle after the simulated {update['model']} change")
            reply = await self.kc.get_iopub_msg(timeout=remaining)
            if reply["parent_header"].get("msg_id") != msg_id:
                continue
            try:
                self.process_message(reply, cell, cell_index)
            except CellExecutionComplete:
                return


def _take_back_spilled_fd_output(cells: list[Any]) -> None:
    """Move stream outputs of the cells after an ``fd_spill`` cell back into it.

    ipykernel reads file descriptors 1 and 2 in a thread and sends what it reads with the parent
    of whatever request is current when it reads: a write at the very end of a cell (the output
    of ``os.system``, a forked child's print) can land in a later cell, on a loaded machine even
    one or two cells later. The corpus follows each such cell with cells that show no stream
    output of their own, up to the next ``fd_spill`` cell, so anything streamed there came from
    before.
    """
    spill_target = None
    for cell in cells:
        if cell.metadata.get("differential", {}).get("fd_spill"):
            spill_target = cell
            continue
        if spill_target is None:
            continue
        streams = [output for output in cell.outputs if output["output_type"] == "stream"]
        spill_target.outputs.extend(streams)
        cell.outputs = [output for output in cell.outputs if output["output_type"] != "stream"]


def _fill_in_lost_fd_output(cells: list[Any]) -> None:
    """An ``fd_spill`` cell that declares what it writes gets what of it never arrived.

    ipykernel's reader thread puts what it reads into the stream's buffer, which is flushed
    every 0.2 s with the parent it was written under: when that flush comes after the cell's
    idle, nbclient (which reads one cell's messages at a time) drops it. A child that writes
    in pieces (a Python child under ``PYTHONUNBUFFERED=1`` writes a print's text and its
    newline apart) can lose only its last piece that way. What arrived must be the beginning of
    what the cell declares; anything else is left for the comparison to report.
    """
    for cell in cells:
        declared = cell.metadata.get("differential", {}).get("fd_spill")
        if not isinstance(declared, dict):
            continue
        for name, text in declared.items():
            streams = [
                output
                for output in cell.outputs
                if output["output_type"] == "stream" and output["name"] == name
            ]
            arrived = "".join(output["text"] for output in streams)
            if arrived == text or not text.startswith(arrived):
                continue
            if streams:
                streams[-1]["text"] += text[len(arrived) :]
            else:
                cell.outputs.append(nbformat.v4.new_output("stream", name=name, text=text))


def ipykernel_spec_manager(directory: Path) -> KernelSpecManager:
    """A kernelspec "python3" for the ipykernel installed next to this interpreter, only.

    Written to ``directory`` so no system-wide or user "python3" spec can stand in for it.
    """
    import ipykernel

    assert Path(ipykernel.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), (
        f"ipykernel is imported from {ipykernel.__file__}, outside {sys.prefix}"
    )
    spec_dir = directory / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 (ipykernel {ipykernel.__version__})",
        "language": "python",
        "metadata": {"debugger": True},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return KernelSpecManager(kernel_dirs=[str(directory)])


def _path_replacements(workdir: Path) -> list[tuple[str, str]]:
    """Paths that differ between machines and runs, also in the ``~/...`` form IPython prints."""
    home = os.path.expanduser("~")
    paths = [(str(workdir), "<CWD>"), (sys.prefix, "<PREFIX>"), (sys.base_prefix, "<BASE_PREFIX>")]
    short = [
        ("~" + path[len(home) :], name)
        for path, name in paths
        if home not in ("", "/") and path.startswith(home + os.sep)
    ]
    return paths + short


def _prepare(path: Path, workdir: Path) -> tuple[Any, Path, dict[str, str]]:
    """Read the notebook, make its directory (resolved) and IPython files, and the kernel's env."""
    nb = nbformat.read(path, as_version=4)
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    ipython_dir = workdir / ".ipython"
    for relative, text in nb.metadata.get("differential", {}).get("ipython_dir", {}).items():
        target = ipython_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    # The kernel gets the environment of a user's: no pytest variables (ipykernel does not
    # capture file descriptors 1 and 2 when it sees PYTEST_CURRENT_TEST) and no MPLBACKEND.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTEST_") and key != "MPLBACKEND"
    }
    env["IPYTHONDIR"] = str(ipython_dir)
    return nb, workdir, env


async def run_notebook(
    path: Path,
    kernel_name: str,
    workdir: Path,
    *,
    kernel_spec_manager: KernelSpecManager | None = None,
    reference: bool = False,
) -> NotebookResult:
    """Execute one notebook on one kernel and reduce its code cells to :class:`CellResult`.

    ``reference``: the kernel is the one compared against (ipykernel); its known race on output
    written to file descriptors is undone (see :func:`_take_back_spilled_fd_output`).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    nb, workdir, env = _prepare(path, workdir)
    extra: dict[str, Any] = {}
    if kernel_spec_manager is not None:
        extra["kernel_spec_manager"] = kernel_spec_manager
    # IPC sockets: with TCP, jupyter_client picks free ports that the kernel binds only later,
    # and with many kernels starting at once on a busy machine two of them can pick the same.
    # The socket files are named after an absolute path: the kernel's cwd is the workdir.
    km = AsyncKernelManager(
        kernel_name=kernel_name, transport="ipc", ip=str(workdir / "kernel"), **extra
    )
    client = DifferentialClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        allow_errors=True,
        record_timing=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    error = None
    try:
        await client.async_execute(env=env, cleanup_kc=True)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        client.stop_side_client()
    seconds = loop.time() - started

    names = _ModelNames()
    for model_id in client.widget_state:
        names.name(model_id)
    replacements = _path_replacements(workdir)

    def fix(text: str) -> str:
        return names.sub(normalize_text(text, replacements))

    code_cells = [cell for cell in client.nb.cells if cell.cell_type == "code"]
    if reference:
        _take_back_spilled_fd_output(code_cells)
        _fill_in_lost_fd_output(code_cells)
    cells: dict[str, CellResult] = {}
    for index, cell in enumerate(code_cells):
        cell_id = cell.get("id", str(index))
        cells[cell_id] = CellResult(
            id=cell_id,
            source=cell.source,
            outputs=normalize_outputs(cell.outputs, fix),
            widgets={
                names.name(model_id): normalize_outputs(outputs, fix)
                for model_id, outputs in client.widget_changes.get(cell_id, {}).items()
            },
            created=client.created.get(cell_id, []),
        )
    return NotebookResult(path.stem, kernel_name, cells, seconds, error, client.seconds)


async def run_corpus(
    paths: Sequence[Path],
    kernel_name: str,
    root: Path,
    *,
    kernel_spec_manager: KernelSpecManager | None = None,
    reference: bool = False,
    concurrency: int = 3,
) -> dict[str, NotebookResult]:
    """Execute every notebook, ``concurrency`` kernels at a time; results by notebook name."""
    gate = asyncio.Semaphore(concurrency)

    async def one(path: Path) -> NotebookResult:
        async with gate:
            return await run_notebook(
                path,
                kernel_name,
                root / path.stem,
                kernel_spec_manager=kernel_spec_manager,
                reference=reference,
            )

    results = await asyncio.gather(*(one(path) for path in paths))
    return {result.name: result for result in results}


def reference_key(paths: Sequence[Path]) -> str:
    """What ipykernel's results depend on: the notebooks, this runner, ipykernel and Python."""
    import ipykernel

    digest = hashlib.sha256()
    for part in [Path(__file__), *paths]:
        digest.update(part.name.encode() + b"\0" + part.read_bytes() + b"\0")
    digest.update(f"{ipykernel.__version__} {sys.version} {sys.prefix}".encode())
    return digest.hexdigest()[:24]


def save_results(results: dict[str, NotebookResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({name: asdict(result) for name, result in results.items()}))


def load_results(path: Path) -> dict[str, NotebookResult]:
    raw = json.loads(path.read_text())
    results = {}
    for name, data in raw.items():
        data["cells"] = {key: CellResult(**cell) for key, cell in data["cells"].items()}
        results[name] = NotebookResult(**data)
    return results


def corpus_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))
