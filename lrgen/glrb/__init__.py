"""Genomics Long-Range Benchmark: task registry, published files, heads per task, fine-tuning, evaluation."""
