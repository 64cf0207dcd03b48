"""Benchmarks: refserver against other ASGI servers, in one interleaved run (see README.md)."""
