"""Benchmarks (run with ``python3 scripts/dev.py bench``); each ``bench_*.py`` adds one group."""
