"""The pretraining suite of ``benchmarks/pretrain_suite.py`` (issue 19), in stages that survive being cut off.

Every stage — the sweep's runs, each model's training, each evaluation — records its result in the work folder's
``state.json`` when it is done and is skipped when the suite runs again; training continues from its last
checkpoint (``lrgen pretrain``'s time limit stops it cleanly). ``clock`` keeps the deadline, ``state`` the record,
``family`` the three model sizes and their 16-bit exports, ``sweep`` the batch-size and learning-rate sweep,
``training`` the main runs, ``extrapolation`` the perplexity-vs-context sweep, ``variant_signal`` the zero-shot
singleton-vs-common AUROCs, ``report`` the files written under ``--out``.
"""
