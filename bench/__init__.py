"""Benchmarks: `make bench` prints figures and writes them as JSON. Never timed tests."""
