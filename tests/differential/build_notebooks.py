"""The differential corpus, as source: ``python tests/differential/build_notebooks.py`` writes it.

Each notebook is small and covers one thing users do. Every code cell has a stable ``id`` (the
differential test and ``intended.toml`` name cells by it). Two cell-metadata keys steer the
runner (``tests/differential/runner.py``):

- ``"differential": {"comm_update": {"model": "IntSliderModel", "state": {"value": 7}}}``: after
  the cell, the runner plays a frontend that moves the last widget of that model to the new state
  (a ``comm_msg`` "update" on shell), and collects the outputs the kernel produces in response.
- ``"differential": {"fd_spill": true}``: the cell writes to file descriptors 1/2 only (directly,
  through a subprocess or a forked child). ipykernel forwards such writes from a reader thread and
  can attribute them to a later cell when the cell ends first; on ipykernel's side only, the
  runner moves the stream outputs of the cells after it (up to the next ``fd_spill`` cell) back
  into it. Those cells must show no stream output of their own. ipykernel can also lose such a
  write (its reader thread buffers it, and the buffer is sent with the cell's parent after the
  cell's idle, which nbclient drops): ``fd_spill`` may then be ``{stream name: text}``, what
  the cell writes, and the runner uses it for ipykernel's side when none of it arrived.
- tags ``raises-exception``: the cell is expected to fail (nbclient's own convention).

Notebook metadata ``"differential": {"ipython_dir": {relative path: text}}`` writes files into the
kernel's IPYTHONDIR before it starts (profile config, startup files).

``test_differential.py::test_notebooks_are_built_from_this_file`` checks the committed .ipynb
files are what this script writes, so edit here and re-run the script.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

NOTEBOOKS = Path(__file__).parent / "notebooks"


@dataclass
class Cell:
    id: str
    source: str
    raises: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Notebook:
    name: str
    title: str
    cells: list[Cell]
    metadata: dict[str, Any] = field(default_factory=dict)


def code(id: str, source: str, *, raises: bool = False, **metadata: Any) -> Cell:
    return Cell(id, source.strip("\n"), raises, {"differential": metadata} if metadata else {})


CORPUS: list[Notebook] = [
    Notebook(
        "output_widget",
        "The ipywidgets Output widget",
        [
            code(
                "setup",
                "from IPython.display import HTML, clear_output, display\n"
                "from ipywidgets import Output",
            ),
            code(
                "with-out",
                "out = Output()\n"
                "display(out)\n"
                "print('in the cell')\n"
                "with out:\n"
                "    print('captured')",
            ),
            code(
                "capture-decorator",
                "@out.capture()\ndef report(n):\n    print('report', n)\n\nreport(1)\nreport(2)",
            ),
            code(
                "display-inside",
                "with out:\n    display(HTML('<b>bold in the widget</b>'))\n    print('and text')",
            ),
            code(
                "clear-wait-inside",
                "print('cell output stays')\n"
                "with out:\n"
                "    print('old')\n"
                "    clear_output(wait=True)\n"
                "    print('new')\n"
                "print('cell output after')",
            ),
            code(
                "exception-inside",
                "bad = Output()\n"
                "display(bad)\n"
                "with bad:\n"
                "    raise ValueError('raised inside the widget')\n"
                "print('the cell goes on')",
            ),
            code(
                "capture-clear",
                "@out.capture(clear_output=True)\ndef fresh():\n    print('only this')\n\nfresh()",
            ),
            code(
                "append",
                "side = Output()\n"
                "side.append_stdout('appended stdout\\n')\n"
                "side.append_stderr('appended stderr\\n')\n"
                "side.append_display_data(HTML('<i>appended html</i>'))\n"
                "side",
            ),
            code(
                "nested",
                "outer = Output()\n"
                "inner = Output()\n"
                "display(outer)\n"
                "with outer:\n"
                "    print('outer 1')\n"
                "    display(inner)\n"
                "    with inner:\n"
                "        print('inner')\n"
                "    print('outer 2')",
            ),
        ],
    ),
    Notebook(
        "interact",
        "interact and interactive_output",
        [
            code(
                "interact-print",
                "from ipywidgets import IntSlider, interact, interactive_output\n"
                "from IPython.display import display\n"
                "\n"
                "def double(x):\n"
                "    print('double', x * 2)\n"
                "\n"
                "interact(double, x=5);",
                comm_update={"model": "IntSliderModel", "state": {"value": 7}},
            ),
            code(
                "interact-return",
                "@interact(word='abc')\ndef shout(word):\n    return word.upper()",
                comm_update={"model": "TextModel", "state": {"value": "xyz"}},
            ),
            code(
                "interactive-output",
                "a = IntSlider(value=1, description='a')\n"
                "b = IntSlider(value=2, description='b')\n"
                "\n"
                "def total(a, b):\n"
                "    print('sum', a + b)\n"
                "\n"
                "shown = interactive_output(total, {'a': a, 'b': b})\n"
                "display(a, b, shown)",
                comm_update={"model": "IntSliderModel", "state": {"value": 10}},
            ),
            code(
                "kernel-side-change",
                "b.value = 30\nprint('b is', b.value)",
            ),
        ],
    ),
    Notebook(
        "display_updates",
        "display ids, update_display and clear_output",
        [
            code(
                "display-id",
                "from IPython.display import HTML, clear_output, display, update_display\n"
                "handle = display('first', display_id=True)\n"
                "display('named', display_id='fixed')",
            ),
            code("handle-update", "handle.update('first, updated')\nprint('updated')"),
            code(
                "update-by-id",
                "update_display(HTML('<p>named, updated</p>'), display_id='fixed')\n"
                "display('shown twice', display_id='twice')\n"
                "display('shown twice', display_id='twice')\n"
                "update_display('twice, updated', display_id='twice')",
            ),
            code(
                "clear-output",
                "print('gone')\nclear_output()\nprint('kept')",
            ),
            code(
                "clear-wait",
                "for i in range(3):\n    clear_output(wait=True)\n    print('step', i)",
            ),
            code(
                "clear-then-display",
                "display(HTML('<p>old html</p>'))\n"
                "clear_output(wait=True)\n"
                "display(HTML('<p>new html</p>'))",
            ),
            code(
                "publish",
                "from IPython.display import publish_display_data\n"
                "publish_display_data({'text/plain': 'plain', 'text/html': '<p>html</p>'},\n"
                "                     metadata={'text/html': {'isolated': True}})",
            ),
            code(
                "handle-repr",
                "h = display('x', display_id='some-id')\nh",
            ),
        ],
    ),
    Notebook(
        "magics",
        "Line and cell magics",
        [
            code("time", "%time sum(range(1000))"),
            code("time-cell", "%%time\nx = sum(range(1000))\nx"),
            code("timeit", "%timeit -n1 -r1 sum(range(1000))"),
            code("timeit-o", "result = %timeit -o -q -n1 -r1 pass\ntype(result).__name__"),
            code("env-set", "%env CORPUS_VAR=hello"),
            code("env-get", "%env CORPUS_VAR"),
            code("env-os", "import os\nos.environ['CORPUS_VAR']"),
            code("who", "alpha = 1\nbeta = 'two'\n%who"),
            code("who-ls", "%who_ls int"),
            code(
                "capture",
                "%%capture captured\nprint('hidden stdout')\nimport sys\n"
                "print('hidden stderr', file=sys.stderr)",
            ),
            code(
                "capture-show",
                "print(repr(captured.stdout), repr(captured.stderr))\ncaptured.show()",
            ),
            code("writefile", "%%writefile corpus_module.py\nVALUE = 42\nprint('imported')"),
            code("import-written", "import corpus_module\ncorpus_module.VALUE"),
            code("run-file", "%run corpus_module.py"),
            code("load-ext", "%load_ext autoreload\n%autoreload 2\nprint('autoreload on')"),
            code("config", "%config InteractiveShell.ast_node_interactivity = 'all'"),
            code("interactivity-all", "1 + 1\n2 + 2"),
            code("config-back", "%config InteractiveShell.ast_node_interactivity = 'last_expr'"),
            code("config-show", "%config InteractiveShell.ast_node_interactivity"),
            code("store", "stored_value = [1, 2, 3]\n%store stored_value"),
            code("store-r", "del stored_value\n%store -r stored_value\nstored_value"),
            code("store-list", "%store"),
            code("precision", "%precision 3\n3.14159265"),
            code("xmode", "%xmode Plain"),
            code("html-magic", "%%html\n<p>cell magic html</p>"),
            code("markdown-magic", "%%markdown\n**bold** text"),
            code("latex-magic", "%%latex\n$\\alpha + \\beta$"),
            code("javascript-magic", "%%javascript\nconsole.log('js');"),
            code("script-bash", "%%bash\necho from bash\necho bash stderr >&2"),
            code("script-python", "%%script python3\nprint('from a python subprocess')"),
            code("unknown-magic", "%no_such_magic", raises=True),
            code(
                "kernel-magics",
                "magics = get_ipython().magics_manager.magics\n"
                "sorted(name for name in ['connect_info', 'qtconsole', 'autosave', 'clear', "
                "'less', 'more', 'man', 'store', 'matplotlib', 'gui', 'edit']\n"
                "       if name in magics['line'])",
            ),
            code("history", "%history -n 1-2"),
            code("pinfo", "def documented():\n    'A docstring.'\n\ndocumented?"),
        ],
    ),
    Notebook(
        "ipython_config",
        "IPython profile configuration and startup files",
        [
            code("startup-ran", "startup_value"),
            code("exec-lines-ran", "exec_line_value"),
            code("extension-loaded", "'autoreload' in get_ipython().extension_manager.loaded"),
            code("storemagic-loaded", "'store' in get_ipython().magics_manager.magics['line']"),
        ],
        metadata={
            "ipython_dir": {
                "profile_default/startup/00-corpus.py": "startup_value = 'from startup'\n",
                "profile_default/ipython_kernel_config.py": (
                    "c.InteractiveShellApp.exec_lines = ['exec_line_value = 11 * 3']\n"
                    "c.InteractiveShellApp.extensions = ['autoreload']\n"
                ),
            }
        },
    ),
    Notebook(
        "subprocesses",
        "Shell escapes, subprocesses and output written to file descriptors",
        [
            code("bang", "!echo from bang"),
            code("bang-capture", "lines = !echo one; echo two\nlines"),
            code("bang-stderr", "!echo bang stderr >&2"),
            # Cells marked fd_spill write only to file descriptors 1/2 (or a child process does)
            # and show nothing else; the cell after each shows a result and no stream.
            code(
                "os-system",
                "import os\nstatus = os.system('echo from os.system')",
                fd_spill={"stdout": "from os.system\n"},
            ),
            code("os-system-status", "status"),
            code(
                "subprocess-run",
                "import subprocess, sys\n"
                "done = subprocess.run([sys.executable, '-c', \"print('from subprocess.run')\"])",
                fd_spill={"stdout": "from subprocess.run\n"},
            ),
            code("subprocess-run-status", "done.returncode"),
            code(
                "subprocess-capture",
                "subprocess.run(['echo', 'captured'], capture_output=True, text=True).stdout",
            ),
            code(
                "multiprocessing-print",
                "import multiprocessing\n"
                "\n"
                "def child_print():\n"
                "    print('from a child process')\n"
                "\n"
                "ctx = multiprocessing.get_context('fork')\n"
                "p = ctx.Process(target=child_print)\n"
                "p.start()\n"
                "p.join()",
                fd_spill={"stdout": "from a child process\n"},
            ),
            code("multiprocessing-print-status", "p.exitcode"),
            code(
                "multiprocessing-error",
                "def child_fail():\n"
                "    raise RuntimeError('failure in a child process')\n"
                "\n"
                "p = ctx.Process(target=child_fail)\n"
                "p.start()\n"
                "p.join()",
                fd_spill=True,
            ),
            code("multiprocessing-error-status", "p.exitcode"),
            code(
                "fileno", "type(sys.stdout.fileno()).__name__, type(sys.stderr.fileno()).__name__"
            ),
            code(
                "faulthandler",
                "import faulthandler\nfaulthandler.enable()\nfaulthandler.is_enabled()",
            ),
            code(
                "fd-write",
                "written = os.write(1, b'written to fd 1\\n')",
                fd_spill={"stdout": "written to fd 1\n"},
            ),
            code("fd-write-count", "written"),
            # Results only, so that a late fd write of the cells above still has a cell to land in.
            code("end", "'end of the notebook'"),
            code("end-2", "'really the end'"),
        ],
    ),
    Notebook(
        "stdin",
        "input() and getpass under nbclient (which sends allow_stdin=False)",
        [
            code("input", "input('name? ')", raises=True),
            code("getpass", "import getpass\ngetpass.getpass('secret? ')", raises=True),
            code("after", "print('still running')"),
        ],
    ),
    Notebook(
        "errors",
        "Exceptions and their tracebacks",
        [
            code("zero-division", "1 / 0", raises=True),
            code(
                "in-function",
                "def inner(x):\n    return x['missing']\n\ndef outer():\n    return inner({})",
            ),
            code("call-function", "outer()", raises=True),
            code("name-error", "undefined_name", raises=True),
            code("syntax-error", "def broken(:\n    pass", raises=True),
            code("indentation-error", "if True:\nprint('no indent')", raises=True),
            code(
                "chained",
                "try:\n"
                "    {}['key']\n"
                "except KeyError as exc:\n"
                "    raise ValueError('while handling') from exc",
                raises=True,
            ),
            code(
                "notes",
                "err = TypeError('with a note')\nerr.add_note('a note for the reader')\nraise err",
                raises=True,
            ),
            code(
                "exception-group",
                "raise ExceptionGroup('many', [ValueError('one'), KeyError('two')])",
                raises=True,
            ),
            code("assert", "assert 1 == 2, 'numbers differ'", raises=True),
            code("sys-exit", "import sys\nsys.exit(3)", raises=True),
            code("system-exit-0", "raise SystemExit(0)", raises=True),
            code(
                "output-then-error",
                "print('before the error')\nraise RuntimeError('after')",
                raises=True,
            ),
            code("import-error", "import no_such_module_for_corpus", raises=True),
            code("recovered", "print('the kernel is fine')"),
        ],
    ),
    Notebook(
        "rich_output",
        "Rich output: mimetypes, _repr_*_ methods, unicode, large and partial output",
        [
            code(
                "html",
                "from IPython.display import (HTML, JSON, SVG, Image, Latex, Markdown, Math,\n"
                "                             Pretty, display)\n"
                "HTML('<table><tr><td>cell</td></tr></table>')",
            ),
            code("markdown", "Markdown('# Title\\n*emphasis*')"),
            code("latex", "Latex(r'$\\frac{a}{b}$')"),
            code("math", "Math(r'\\int_0^1 x\\,dx')"),
            code("json", "JSON({'a': [1, 2, {'b': None}]}, expanded=True)"),
            code(
                "svg",
                'SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                '<rect width="10" height="10"/></svg>\')',
            ),
            code(
                "png",
                "import base64\n"
                "PNG = base64.b64decode(\n"
                "    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk'\n"
                "    '+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==')\n"
                "Image(data=PNG, width=20)",
            ),
            code(
                "repr-methods",
                "class Rich:\n"
                "    def _repr_html_(self):\n"
                "        return '<em>rich</em>'\n"
                "    def _repr_markdown_(self):\n"
                "        return '*rich*'\n"
                "    def _repr_latex_(self):\n"
                "        return '$rich$'\n"
                "    def __repr__(self):\n"
                "        return 'Rich()'\n"
                "Rich()",
            ),
            code(
                "mimebundle",
                "class Bundle:\n"
                "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
                "        return ({'text/plain': 'bundle', 'application/vnd.corpus+json': {'k': 1}},\n"
                "                {'application/vnd.corpus+json': {'meta': True}})\n"
                "display(Bundle())",
            ),
            code(
                "raw",
                "display({'text/plain': 'raw plain', 'text/html': '<p>raw html</p>'}, raw=True)",
            ),
            code(
                "include-exclude",
                "display(Rich(), include=['text/html', 'text/plain'])\n"
                "display(Rich(), exclude=['text/html'])",
            ),
            code("multiple", "display(1, 'two', [3])\nPretty('pretty text')"),
            code("none-result", "None"),
            code("semicolon", "42;"),
            code("unicode", "print('héllo wörld ✓ 日本語 🐍')\n'ünïcode result'"),
            code("large", "for i in range(5000):\n    print('line', i)"),
            code(
                "partial-lines",
                "import sys\n"
                "print('no newline', end='')\n"
                "print(' then more', end='')\n"
                "print()\n"
                "print('progress 10%\\rprogress 100%')\n"
                "sys.stdout.write('written')\n"
                "sys.stdout.flush()",
            ),
            code(
                "stderr-interleaved",
                "print('out 1')\n"
                "print('err 1', file=sys.stderr)\n"
                "print('out 2')\n"
                "print('err 2', file=sys.stderr)",
            ),
            code("long-repr", "list(range(300))"),
            code("numpy", "import numpy as np\nnp.arange(12).reshape(3, 4)"),
            code(
                "pandas",
                "try:\n"
                "    import pandas as pd\n"
                "except ImportError:\n"
                "    print('pandas not installed')\n"
                "else:\n"
                "    display(pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']}))",
            ),
        ],
    ),
    Notebook(
        "matplotlib_inline",
        "matplotlib with the inline backend",
        [
            code(
                "inline",
                "%matplotlib inline\n"
                "import matplotlib\n"
                "import matplotlib.pyplot as plt\n"
                "matplotlib.rcParams['svg.hashsalt'] = 'corpus'\n"
                "matplotlib.get_backend()",
            ),
            code("plot", "plt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares');"),
            code(
                "show", "fig, ax = plt.subplots(figsize=(2, 2))\nax.bar([1, 2], [3, 4])\nplt.show()"
            ),
            code("figure-result", "fig"),
            code("no-figure", "plt.close('all')\nprint('closed')"),
            code(
                "svg-format",
                "%config InlineBackend.figure_formats = ['svg']\n"
                "plt.figure(figsize=(1, 1))\n"
                "plt.plot([0, 1]);",
            ),
            code("backend-names", "%matplotlib --list"),
        ],
    ),
    Notebook(
        "matplotlib_web",
        "matplotlib's web backends and %gui names",
        [
            code("notebook", "%matplotlib notebook\nimport matplotlib\nmatplotlib.get_backend()"),
            code("nbagg", "%matplotlib nbagg\nmatplotlib.get_backend()"),
            code("gui-asyncio", "%gui asyncio\nprint('gui asyncio accepted')"),
        ],
    ),
    Notebook(
        "context",
        "decimal and contextvars across cells",
        [
            code("decimal-set", "import decimal\ndecimal.getcontext().prec = 5"),
            code("decimal-use", "decimal.Decimal(1) / decimal.Decimal(7)"),
            code(
                "contextvar-set",
                "import contextvars\n"
                "var = contextvars.ContextVar('var', default='default')\n"
                "token = var.set('set in a cell')",
            ),
            code("contextvar-get", "var.get()"),
            code(
                "localcontext",
                "with decimal.localcontext() as ctx:\n    ctx.prec = 2\n    print(decimal.Decimal(1) / 3)\ndecimal.Decimal(1) / 3",
            ),
        ],
    ),
    Notebook(
        "async_cells",
        "Top-level await",
        [
            code("anyio-sleep", "import anyio\nawait anyio.sleep(0)\n'anyio ok'"),
            code(
                "anyio-group",
                "results = []\n"
                "async def work(n):\n"
                "    await anyio.sleep(0)\n"
                "    results.append(n)\n"
                "async with anyio.create_task_group() as tg:\n"
                "    for n in range(3):\n"
                "        tg.start_soon(work, n)\n"
                "sorted(results)",
            ),
            code(
                "async-for",
                "async def agen():\n"
                "    for i in range(3):\n"
                "        yield i\n"
                "[i async for i in agen()]",
            ),
            code("asyncio-sleep", "import asyncio\nawait asyncio.sleep(0)\n'asyncio ok'"),
            code(
                "asyncio-gather",
                "async def square(n):\n"
                "    await asyncio.sleep(0)\n"
                "    return n * n\n"
                "await asyncio.gather(*(square(n) for n in range(4)))",
            ),
            code("asyncio-run", "asyncio.run(square(5))"),
            code("autoawait", "%autoawait"),
            code(
                "thread-print",
                "import threading\n"
                "worker = threading.Thread(target=print, args=('from a thread',))\n"
                "worker.start()\n"
                "worker.join()",
            ),
            code(
                "executor-map",
                "from concurrent.futures import ThreadPoolExecutor\n"
                "with ThreadPoolExecutor(2) as pool:\n"
                "    list(pool.map(lambda n: n * n, range(5)))",
            ),
        ],
    ),
    Notebook(
        "warnings",
        "Warnings",
        [
            code("user-warning", "import warnings\nwarnings.warn('a user warning')"),
            code("once", "for _ in range(3):\n    warnings.warn('warned once per location')"),
            code(
                "deprecation",
                "def old():\n"
                "    warnings.warn('old is deprecated', DeprecationWarning, stacklevel=2)\n"
                "old()",
            ),
            code("category", "warnings.warn('careful', RuntimeWarning)"),
            code("logging", "import logging\nlogging.warning('logged at warning')"),
            code("logging-info", "logging.info('not shown at the default level')"),
            code(
                "as-error",
                "with warnings.catch_warnings():\n"
                "    warnings.simplefilter('error')\n"
                "    warnings.warn('now an error')",
                raises=True,
            ),
        ],
    ),
    Notebook(
        "history_vars",
        "Out, _, __, _i and In",
        [
            code("first", "40 + 2"),
            code("underscore", "_ + 1"),
            code("double-underscore", "__"),
            code("last-input", "_i"),
            code("out-dict", "sorted(Out)"),
            code("in-list", "In[1]"),
        ],
    ),
    Notebook(
        "progress",
        "tqdm progress bars, text and widget",
        [
            code(
                "text-bar",
                "import sys\n"
                "from tqdm import tqdm\n"
                "for _ in tqdm(range(3), file=sys.stdout, ascii=True, mininterval=0,\n"
                "              bar_format='{l_bar}{bar:10}| {n_fmt}/{total_fmt}'):\n"
                "    pass",
            ),
            code(
                "widget-bar",
                "from tqdm.notebook import tqdm as notebook_tqdm\n"
                "for _ in notebook_tqdm(range(3), bar_format='{n_fmt}/{total_fmt}'):\n"
                "    pass",
            ),
        ],
    ),
    Notebook(
        "kernel_surface",
        "What code reaches through get_ipython().kernel",
        [
            code(
                "attributes",
                "kernel = get_ipython().kernel\n"
                "{name: hasattr(kernel, name) for name in\n"
                " ['get_parent', 'iopub_socket', 'session', 'shell', 'comm_manager']}",
            ),
            code(
                "parent",
                "parent = get_ipython().kernel.get_parent()\n"
                "parent['header']['msg_type'], sorted(parent['content'])",
            ),
            code(
                "iopub-send",
                "_ = kernel.session.send(kernel.iopub_socket, 'display_data',\n"
                "    content={'data': {'text/plain': 'sent on iopub'}, 'metadata': {}},\n"
                "    parent=kernel.get_parent())",
            ),
        ],
    ),
]


def build(notebook: Notebook) -> nbformat.NotebookNode:
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    if notebook.metadata:
        nb.metadata["differential"] = notebook.metadata
    nb.cells.append(v4.new_markdown_cell(f"# {notebook.title}", id="title"))
    for cell in notebook.cells:
        metadata = dict(cell.metadata)
        if cell.raises:
            metadata["tags"] = ["raises-exception"]
        nb.cells.append(v4.new_code_cell(cell.source, id=cell.id, metadata=metadata))
    return nb


def render(notebook: Notebook) -> str:
    return nbformat.writes(build(notebook)) + "\n"


def main() -> None:
    NOTEBOOKS.mkdir(exist_ok=True)
    names = {notebook.name for notebook in CORPUS}
    for stale in NOTEBOOKS.glob("*.ipynb"):
        if stale.stem not in names:
            stale.unlink()
    for notebook in CORPUS:
        (NOTEBOOKS / f"{notebook.name}.ipynb").write_text(render(notebook))
    print(f"wrote {len(CORPUS)} notebooks to {NOTEBOOKS}", file=sys.stderr)


if __name__ == "__main__":
    main()
