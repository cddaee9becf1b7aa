"""cokernel_scenarios: interaction patterns real frontends produce, played against a kernel."""
