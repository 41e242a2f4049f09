"""Benchmarks for runnx: the model zoo (bench.models), compare.py and peak.py."""
