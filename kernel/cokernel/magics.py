"""The magics a kernel adds to IPython's: ``%connect_info``, ``%qtconsole``, ``%autosave``,
``%clear``, ``%less``/``%more`` and ``%man``, behaving as ipykernel's do.

A kernel has no terminal: the pager magics send their text to the frontend's pager (the
``page`` payload of the execute reply), and ``%autosave`` asks the classic notebook's page to
change its interval through a JavaScript display (other frontends ignore it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from typing import Any

from IPython.core import page
from IPython.core.error import UsageError
from IPython.display import Javascript, display
from IPython.utils import openpy


class KernelMagics:
    """Magics that only make sense in a kernel (line magics named after the methods)."""

    NAMES = ("connect_info", "qtconsole", "autosave", "clear", "less", "more", "man")

    def __init__(self, shell: Any) -> None:
        self.shell = shell

    def register(self) -> None:
        for name in self.NAMES:
            self.shell.register_magic_function(
                getattr(self, name), magic_kind="line", magic_name=name
            )

    def _kernel(self) -> Any:
        return getattr(self.shell, "kernel", None)

    def connect_info(self, line: str = "") -> None:
        """Print what another client needs to connect to this kernel (its connection file)."""
        kernel = self._kernel()
        info = dict(getattr(kernel, "connection_info", None) or {})
        path = getattr(kernel, "connection_file", None)
        if not info or not path:
            print("This kernel has no connection file: it runs inside its host's process.")
            return
        if isinstance(info.get("key"), bytes):
            info["key"] = info["key"].decode()
        name = _short_connection_name(path)
        print(json.dumps(info, indent=1, sort_keys=True) + "\n")
        print(
            "Paste the above JSON into a file, and connect with:\n"
            "    $> jupyter <app> --existing <file>\n"
            "or, if you are local, you can connect with just:\n"
            f"    $> jupyter <app> --existing {name}\n"
            "or even just:\n"
            "    $> jupyter <app> --existing\n"
            "if this is the most recent Jupyter kernel you have started."
        )

    def qtconsole(self, line: str = "") -> None:
        """Open a Qt console connected to this kernel (needs the ``qtconsole`` package)."""
        path = getattr(self._kernel(), "connection_file", None)
        if not path:
            raise UsageError("%qtconsole needs a kernel started with a connection file")
        if importlib.util.find_spec("qtconsole") is None:
            raise UsageError(
                "%qtconsole needs the qtconsole package, which is not installed: "
                "pip install qtconsole"
            )
        argv = [sys.executable, "-m", "qtconsole", "--existing", path, *shlex.split(line)]
        subprocess.Popen(argv, start_new_session=True)

    def autosave(self, line: str = "") -> None:
        """Set the notebook's autosave interval in seconds (0 disables it)."""
        try:
            interval = int(line)
        except ValueError:
            raise UsageError(f"%autosave requires an integer, got {line!r}") from None
        display(
            Javascript(f"IPython.notebook.set_autosave_interval({interval * 1000})"),
            include=["application/javascript"],
        )
        print(f"Autosaving every {interval} seconds" if interval else "Autosave disabled")

    def clear(self, line: str = "") -> None:
        """Clear the terminal (what ``clear`` prints)."""
        self.shell.system("clear" if os.name == "posix" else "cls")

    def less(self, line: str = "") -> None:
        """Show a file in the frontend's pager; ``.py`` files are highlighted."""
        filename = line.strip()
        if not filename:
            raise UsageError("Missing filename.")
        if filename.endswith(".py"):
            text = self.shell.pycolorize(openpy.read_py_file(filename, skip_encoding_cookie=False))
        else:
            with open(filename, encoding="utf-8", errors="replace") as f:
                text = f.read()
        page.page(text)

    def more(self, line: str = "") -> None:
        """Show a file in the frontend's pager (as ``%less``)."""
        self.less(line)

    def man(self, line: str = "") -> None:
        """Show the man page of a command in the frontend's pager."""
        page.page(self.shell.getoutput(f"man {line} | col -b", split=False))


def _short_connection_name(path: str) -> str:
    """The connection file's name alone when it is in Jupyter's runtime directory."""
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        if os.path.dirname(os.path.abspath(path)) == os.path.abspath(jupyter_runtime_dir()):
            return os.path.basename(path)
    except Exception:
        pass
    return path
