"""Benchmarks, run on demand (see bench/README.md); a package so they share helpers."""
