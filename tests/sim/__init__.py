"""Simulators for tests and the demo: the strict T-Union card (`sim.card`) and the documented test keys (`sim.keys`)."""
