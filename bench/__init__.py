"""Benchmarks (``python -m bench.<name>``): figures as ratios of things run side by side."""
