"""Masked-LM pretraining on genomes (``lrgen pretrain``) and MLM evaluation at several contexts (``evaluate_mlm``).

Modules: ``config`` (settings from file and flags), ``data`` (genomes in memory, windows), ``masking`` (objective),
``distributed`` (torchrun/DDP helpers), ``checkpoints`` (run-directory layout), ``loop`` (training), ``evaluate``.
Import from the submodules; this package imports nothing heavy.
"""
