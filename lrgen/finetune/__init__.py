"""Fine-tuning backbones with GLRB task heads, and fine-tuned models on disk."""
