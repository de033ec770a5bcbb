"""Genomics Long-Range Benchmark: task registry, loaders of the published files, heads, metrics, evaluation."""
