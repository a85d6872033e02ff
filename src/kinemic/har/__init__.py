"""Skeleton action classifiers and the HAR evaluation protocol."""
