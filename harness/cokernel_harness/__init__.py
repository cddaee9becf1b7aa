"""cokernel_harness: simulated Jupyter frontends, benchmarks and conformance checks for any kernel.

The harness speaks only the Jupyter messaging protocol (through jupyter_client and pyzmq), so
every tool in it runs against any installed kernelspec, cokernel or not:

- :mod:`cokernel_harness.frontend` and :mod:`cokernel_harness.transport`: an async simulated
  frontend over ZMQ, which scenarios and conformance checks drive;
- :mod:`cokernel_harness.websocket`: the same frontend reaching a kernel behind a Jupyter Server
  or a kernel gateway (REST plus one websocket; ``cokernel-harness conformance --server URL``);
- :mod:`cokernel_harness.widgets`: the page's side of the ipywidgets comm protocol;
- :mod:`cokernel_harness.runner` and :mod:`cokernel_harness.cli`: ``cokernel-harness
  conformance|scenarios|bench``, the scenario library (``cokernel_scenarios``) and the
  protocol validator over any kernel, reported as a table and JSON;
- :mod:`cokernel_harness.pytest_plugin`: the ``frontend`` fixture (``--harness-kernel NAME``);
- :mod:`cokernel_harness.bench`: the bench runner (``python -m cokernel_harness.bench``), with
  its workloads in :mod:`cokernel_harness.bench_workloads` and its timestamping client in
  :mod:`cokernel_harness.bench_wire`.
"""
