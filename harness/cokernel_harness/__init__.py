"""cokernel_harness: simulated Jupyter frontends, benchmarks and conformance checks for any kernel."""
