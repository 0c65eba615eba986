"""Helpers shared by the tests (and the GPU kit, the benchmarks): case sweeps, naive loops, model
zoos, built-library lookup, the device harness. Imported as ``helpers.<module>`` (pytest puts tests/
on sys.path for the test modules; scripts outside tests/ add it themselves)."""
