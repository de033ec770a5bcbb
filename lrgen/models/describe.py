"""What the resolver recognised in a model (``lrgen info --model``): family, layout, source, size, vocabulary,
capabilities, and the context it was trained at where a file or the name says so (nothing is inferred; a
tokenizer's ``model_max_length`` is a limit set by whoever wrote the file, not a training fact, and is not read)."""

from __future__ import annotations

import re
from typing import Any

from lrgen.models.base import LanguageModel
from lrgen.models.checkpoint import RUN_CONFIG_NAME, read_config, run_context
from lrgen.models.layouts import layout_of
from lrgen.models.resolve import ResolvedModel

SOURCES = {
    "preset": "preset: architecture only, random weights",
    "bundled": "bundled with lrgen (trained)",
    "folder": "checkpoint folder",
    "hub": "Hugging Face hub snapshot",
    "object": "a model object",
}
#: config.json keys that state a sequence length, reported as they are
CONTEXT_KEYS = ("max_seq_len", "seq_len", "max_length", "max_position_embeddings")
_NAME_HINT = re.compile(r"seq_?len[-_]?\d+[kKmM]?")


def describe_model(resolved: ResolvedModel) -> dict[str, Any]:
    """A JSON-ready description of ``resolved`` (see the module docstring)."""
    model, tokenizer = resolved.model, resolved.model.tokenizer
    config = read_config(resolved.directory) if resolved.directory is not None else model.config.to_dict()
    source = SOURCES[resolved.source] if resolved.finetuned is None else (
        f"fine-tuned on {resolved.finetuned.spec.task} ({resolved.finetuned.spec.pooling} head, "
        f"{resolved.finetuned.spec.context:,} bp)")
    vocabulary: dict[str, Any] = {"kind": tokenizer.kind, "size": tokenizer.vocab_size,
                                  **dict(zip("ACGT", tokenizer.nucleotide_ids)), "N": tokenizer.n_id,
                                  "mask": tokenizer.mask_id, "pad": tokenizer.pad_id, "unk": tokenizer.unk_id}
    if not tokenizer.per_base:
        vocabulary.update(k=tokenizer.k, cls=tokenizer.cls_id if tokenizer.prepend_cls else None)
    return {
        "model": resolved.label,
        "family": model.family,
        "layout": _layout(model, config),
        "source": source,
        "directory": str(resolved.directory) if resolved.directory is not None else None,
        "parameters": model.num_parameters(),
        "head_parameters": (sum(p.numel() for p in resolved.finetuned.head.parameters())
                            if resolved.finetuned is not None else None),
        "hidden_size": model.hidden_size,
        "vocabulary": vocabulary,
        "rc_equivariant": bool(model.rc_equivariant),
        "streamable": bool(model.streamable),
        "per_base": bool(tokenizer.per_base),
        "trained_context": _context_facts(resolved, config),
    }


def _layout(model: LanguageModel, config: dict[str, Any]) -> str:
    if layout_of(config) == "esm":
        return "NTv2 in the Hugging Face ESM layout"
    own = model.tokenizer != model.default_tokenizer(model.config)
    if model.family == "caduceus" and own:
        return "PlantCaduceus-like: Caduceus with its own vocabulary (tokenizer.json)"
    if model.family == "caduceus" and {"architectures", "auto_map"} & set(config):
        return "official Caduceus hub layout"
    return "lrgen" + (", its own vocabulary (tokenizer.json)" if own else "")


def _context_facts(resolved: ResolvedModel, config: dict[str, Any]) -> list[str]:
    """Each length a file or the name states, with where it says so."""
    unit = "bp" if resolved.model.tokenizer.per_base else "tokens"
    facts = []
    trained = run_context(resolved.directory)
    if trained is not None:
        facts.append(f"{trained:,} bp ({RUN_CONFIG_NAME} of the lrgen run)")
    for key in CONTEXT_KEYS:
        if isinstance(config.get(key), int):
            facts.append(f"{config[key]:,} {unit} (config.json {key})")
    hint = _NAME_HINT.search(resolved.label)
    if hint is not None:
        facts.append(f"{hint.group(0)} (in the name)")
    return facts
