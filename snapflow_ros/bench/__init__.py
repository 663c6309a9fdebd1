"""Reproducible benchmarks (print markdown tables, write JSON)."""
