"""Listing formats, parsed: pure functions from bytes to papers (no I/O here)."""
