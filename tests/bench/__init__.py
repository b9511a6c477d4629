"""Benchmarks (``make bench``): run as modules, never collected by pytest (``bench_*.py``)."""
