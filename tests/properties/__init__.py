"""Property-based tests: random interleavings of requests, checked against the protocol."""
