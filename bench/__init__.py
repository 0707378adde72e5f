"""Benchmarks: `python -m bench.throughput` (end to end), `python bench/wal_append.py` (the log)."""
