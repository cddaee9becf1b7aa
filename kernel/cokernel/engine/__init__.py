"""The engine layer: where and when a job runs, independent of Jupyter's meaning of it.

``_caller`` (an event loop on a thread, with lanes, tasks, worker threads and direct calls),
``_lending`` (lending a blocked loop's comm lane to a stand-in thread), ``_dispatch`` (run modes
and cell directives), ``_subshells`` (one Caller per subshell), ``_backends`` (one adapter per
async library behind :class:`~cokernel.engine._backends.Backend`) and ``_nested_run`` (the
nested ``asyncio.run``/``trio.run`` patches). Imports only the protocol layer and options.
"""
