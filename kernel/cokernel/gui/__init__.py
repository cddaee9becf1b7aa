"""GUI event loops: a toolkit's loop runs as the *host* on the main thread, the kernel's async
backend (asyncio or trio) runs as its *guest*.

Windows stay live while cells await, and the kernel stays as concurrent as without a host: the
guest's blocking wait for I/O happens on a thread of its own, and each of its steps is posted
to the toolkit's loop. ``--host=tk`` or ``--host=qt`` in a kernelspec's argv turns it on
(``cokernel install --name cokernel-tk --host tk``); see docs/gui.md.

Importing this package imports no toolkit: each is imported when a host starts.
"""

from __future__ import annotations

from cokernel.gui._host import GuestHost as GuestHost
from cokernel.gui._host import HostUnavailable as HostUnavailable
from cokernel.gui._host import Outcome as Outcome
from cokernel.gui._run import describe_hosted as describe_hosted
from cokernel.gui._run import make_host as make_host
from cokernel.gui._run import run_hosted as run_hosted
from cokernel.gui._toolkits import GuiUnavailable as GuiUnavailable
from cokernel.gui._toolkits import check_gui as check_gui

__all__ = [
    "GuestHost",
    "GuiUnavailable",
    "HostUnavailable",
    "Outcome",
    "check_gui",
    "describe_hosted",
    "make_host",
    "run_hosted",
]
