"""The debugger layer: debug_request handling over debugpy (DAP), and its rich answers.

Sees the kernel only through :class:`~cokernel.debugger._host.DebugHost`; imports the shell,
engine and protocol layers.
"""
