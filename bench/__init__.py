"""Benchmarks: each bench_<area>.py exposes run(quick) -> rows; `python -m bench` prints one table."""
