"""cokernel: a concurrent Python kernel for Jupyter.

Messages are scheduled by (channel, msg_type, subshell) lane and run mode, so comms, control,
completion and interrupts stay live while a cell runs. See docs/ for the design.
"""

from cokernel.options import KernelOptions as KernelOptions
from cokernel.protocol import PROTOCOL_VERSION as PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION", "KernelOptions"]
