"""``%subshell``: where the cell runs, and every shell of the kernel with its running cells."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from cokernel.engine._subshells import SubshellNotFound
from cokernel.protocol._request import current_request

if TYPE_CHECKING:
    from cokernel.engine._caller import Caller
    from cokernel.engine._subshells import SubshellRegistry
    from cokernel.shell._shell import CokernelShell


def subshell_magic(
    shell: CokernelShell | None, shell_caller: Caller, subshells: SubshellRegistry
) -> None:
    """Print this cell's shell and thread, then a table of every shell of the kernel."""
    request = current_request.get()
    here = request.subshell_id if request is not None else None
    running: dict[str, int] = {}
    for cell in list(shell.running_cells) if shell is not None else []:
        running[cell.thread.name] = running.get(cell.thread.name, 0) + 1
    main = threading.main_thread().name if shell_caller.thread is None else shell_caller.thread.name
    rows = [("main", main, running.get(main, 0), "shared")]
    for subshell_id in subshells.ids():
        try:
            sub = subshells.get(subshell_id)
        except SubshellNotFound:
            continue
        thread = sub.thread.name if sub.thread is not None else "?"
        rows.append(
            (
                subshell_id,
                thread,
                running.get(thread, 0),
                "own" if sub.namespace is not None else "shared",
            )
        )
    print(
        f"this cell runs on: {'subshell ' + here if here else 'the main shell'} (thread {threading.current_thread().name})"
    )
    print(f"{'shell':34} {'thread':28} {'running':>7}  namespace")
    for name, thread, count, namespace in rows:
        print(f"{name:34} {thread:28} {count:>7}  {namespace}")
