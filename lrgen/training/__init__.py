"""What fine-tuning jobs share: the window protocol, token batches, pooled features, metrics and the loop."""
