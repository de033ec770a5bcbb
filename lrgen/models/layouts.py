"""Checkpoint folders from the field: which layout a folder is in, loading it with lrgen's own modules, and writing
a Caduceus model in the official Caduceus hub layout.

Layouts (``config.json`` decides; weights are read by :mod:`lrgen.models.weights`):

- **lrgen**: ``model_type`` is a family (``caduceus``, ``hawk``, ``ntv2``). Caduceus's parameter names are the
  official ones, so the official Caduceus and PlantCaduceus hub repos are in this layout. The tokenizer is the
  checkpoint's ``tokenizer.json`` (character families; e.g. PlantCaduceus) or ``vocab.txt`` (ntv2) when present,
  else the family's default; it must fit the model's vocabulary and the config's ``complement_map``.
- **esm**: a Hugging Face ESM config (``model_type`` ``esm``, or ``EsmForMaskedLM`` in ``architectures`` or
  ``auto_map``) of a Nucleotide Transformer v2 checkpoint (rotary, bias-free GLU feed-forward): loaded into an ``ntv2`` model with
  ESM's LM head and ``<cls>`` handling, ESM tensor names mapped by :func:`ntv2_tensors_from_esm`. The legacy
  absolute position table and rotary ``inv_freq`` buffers the model does not use are ignored; every tensor it
  uses must be there. The tokenizer is ``vocab.txt`` (the NTv2 6-mer vocabulary; lrgen's own when absent).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lrgen.errors import LrgenError
from lrgen.models.base import LanguageModel
from lrgen.models.checkpoint import CONFIG_NAME, replace_dir, read_config, save_model
from lrgen.models.weights import load_state, read_state_dict
from lrgen.runtime.files import temporary_sibling
from lrgen.tokenizer import (
    CHAR_TOKENIZER,
    TOKENIZER_JSON,
    VOCAB_TXT,
    CharTokenizer,
    KmerTokenizer,
    read_tokenizer_json,
)

if TYPE_CHECKING:  # family modules are imported when needed (lrgen.models.families)
    from lrgen.models.ntv2 import NTv2Config, NTv2Model

TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
TOKENIZER_FILES = (TOKENIZER_JSON, VOCAB_TXT, TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP)
ESM_ARCHITECTURE = "EsmForMaskedLM"
NTV2_VOCAB_SIZE = KmerTokenizer().vocab_size  # 4,107: the published 6-mer vocabulary


def layout_of(data: dict[str, Any]) -> str:
    """``"esm"`` for a Hugging Face ESM config (``model_type`` esm, or ``EsmForMaskedLM`` in ``architectures`` or
    ``auto_map``), else the family named by ``model_type``."""
    auto_map = data.get("auto_map") if isinstance(data.get("auto_map"), dict) else {}
    if (data.get("model_type") == "esm" or ESM_ARCHITECTURE in (data.get("architectures") or [])
            or any(str(v).endswith(f".{ESM_ARCHITECTURE}") for v in auto_map.values())):
        return "esm"
    return str(data.get("model_type"))


def load_layout(directory: Path) -> LanguageModel:
    """The model stored in checkpoint ``directory`` (a folder with ``config.json``), in whichever layout it is."""
    from lrgen.models.families import FAMILIES, family_module

    data = read_config(directory)
    layout = layout_of(data)
    if layout == "esm":
        return _load_esm(directory, data)
    if layout not in FAMILIES:
        said = f"model_type {layout!r}" if "model_type" in data else "no model_type"
        raise LrgenError(f"{directory / CONFIG_NAME}: {said}: not one of {', '.join(FAMILIES)} or an ESM (Nucleotide "
                         "Transformer v2) config")
    module = family_module(layout)
    model = module.MODEL_CLASS(module.CONFIG_CLASS.from_dict(data))
    tokenizer = _family_tokenizer(directory, model)
    tensors, source = read_state_dict(directory)
    load_state(model, tensors, source)
    model.tokenizer = tokenizer
    return model


def _family_tokenizer(directory: Path, model: LanguageModel) -> CharTokenizer | KmerTokenizer:
    """The tokenizer of a checkpoint in lrgen's layout, checked against the model's vocabulary."""
    config = model.config
    rows = getattr(config, "padded_vocab_size", config.vocab_size)
    if model.tokenizer_kind == "kmer":
        path = directory / VOCAB_TXT
        prepend_cls = getattr(config, "cls_token_id", None) is not None
        tokenizer: CharTokenizer | KmerTokenizer = (
            KmerTokenizer.from_vocab_txt(path, prepend_cls) if path.is_file() else model.default_tokenizer(config))
    elif (directory / TOKENIZER_JSON).is_file():
        tokenizer = read_tokenizer_json(directory / TOKENIZER_JSON, getattr(config, "complement_map", None),
                                        special_tokens(directory))
    else:
        tokenizer = model.default_tokenizer(config)
        cmap = {int(k): int(v) for k, v in (getattr(config, "complement_map", None) or {}).items()}
        if tokenizer.vocab_size > rows or any(cmap.get(i, c) != c for i, c in enumerate(tokenizer.complement)):
            raise LrgenError(f"{directory / CONFIG_NAME}: vocab_size or complement_map is not that of lrgen's "
                             f"character vocabulary, and there is no {TOKENIZER_JSON}: put the checkpoint's "
                             f"{TOKENIZER_JSON} here")
    if tokenizer.vocab_size > rows:
        raise LrgenError(f"{directory}: the tokenizer has {tokenizer.vocab_size} tokens, the model {rows}")
    return tokenizer


def special_tokens(directory: Path) -> dict[str, str]:
    """Special-token names (``mask_token``, ``pad_token``, ...) from ``tokenizer_config.json`` and
    ``special_tokens_map.json`` (the latter wins), as plain strings."""
    out: dict[str, str] = {}
    for name in (TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP):
        path = directory / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise LrgenError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
        for key, value in data.items():
            if key.endswith("_token") and isinstance(value, (str, dict)):
                out[key] = value if isinstance(value, str) else value.get("content", "")
    return out


# ---- Nucleotide Transformer v2 in the Hugging Face ESM layout ----------------------------------------------------

# what an NTv2 ESM config must say for lrgen's ntv2 to be its architecture: key → (accepted values, why)
_ESM_REQUIRED: dict[str, tuple[tuple[Any, ...], str]] = {
    "position_embedding_type": (("rotary",), "rotary positions"),
    "add_bias_fnn": ((False,), "a bias-free GLU feed-forward (an ESM config without it is a protein ESM)"),
    "token_dropout": ((False, None), "no token dropout"),
    "emb_layer_norm_before": ((False, None), "no embedding LayerNorm"),
    "tie_word_embeddings": ((False,), "an untied LM decoder"),
    "is_folding_model": ((False, None), "not ESMFold"),
}
_ESM_UNUSED = re.compile(  # legacy tensors the rotary model does not use
    r"^esm\.embeddings\.(position_embeddings\.weight|position_ids)$|\.rotary_embeddings\.inv_freq$")
_CONTACT = "esm.contact_head.regression."


def ntv2_config_from_esm(data: dict[str, Any], path: Path, *, cls_token_id: int, contact_head: bool) -> NTv2Config:
    """The :class:`NTv2Config` of an NTv2 ESM ``config.json`` (read from ``path``; named in errors)."""
    from lrgen.models.ntv2 import NTv2Config

    for key, (accepted, why) in _ESM_REQUIRED.items():
        if data.get(key) not in accepted:
            said = repr(data[key]) if key in data else "absent"
            raise LrgenError(f"{path}: {key} is {said}; lrgen's ntv2 reads Nucleotide Transformer v2 checkpoints "
                             f"({why})")
    try:
        return NTv2Config(
            d_model=int(data["hidden_size"]),
            n_layers=int(data["num_hidden_layers"]),
            n_heads=int(data["num_attention_heads"]),
            mlp_hidden=int(data["intermediate_size"]),
            vocab_size=int(data["vocab_size"]),
            pad_token_id=int(data["pad_token_id"]),
            norm_eps=float(data["layer_norm_eps"]),
            lm_head="esm",
            contact_head=contact_head,
            cls_token_id=cls_token_id,
        )
    except KeyError as err:
        raise LrgenError(f"{path}: {err.args[0]} missing") from None


def ntv2_tensors_from_esm(tensors: dict[str, torch.Tensor], config: NTv2Config,
                          source: Path) -> dict[str, torch.Tensor]:
    """ESM tensor names and shapes → lrgen's ntv2 (q/k/v concatenated, the GLU's dense split into gate and up).

    Unused legacy tensors are dropped; a missing tensor, or one the architecture has no place for, is an error."""
    esm = {k: v for k, v in tensors.items() if not _ESM_UNUSED.search(k)}
    names: dict[str, str | list[str]] = {"embedding.weight": "esm.embeddings.word_embeddings.weight"}
    for i in range(config.n_layers):
        src, dst = f"esm.encoder.layer.{i}.", f"layers.{i}."
        for part in ("weight", "bias"):
            names[f"{dst}norm_attn.{part}"] = f"{src}attention.LayerNorm.{part}"
            names[f"{dst}attn.qkv.{part}"] = [f"{src}attention.self.{n}.{part}" for n in ("query", "key", "value")]
            names[f"{dst}attn.out.{part}"] = f"{src}attention.output.dense.{part}"
            names[f"{dst}norm_mlp.{part}"] = f"{src}LayerNorm.{part}"
        names[f"{dst}mlp.gate_up"] = f"{src}intermediate.dense.weight"
        names[f"{dst}mlp.down.weight"] = f"{src}output.dense.weight"
    for part in ("weight", "bias"):
        names[f"norm_f.{part}"] = f"esm.encoder.emb_layer_norm_after.{part}"
        names[f"lm_head.dense.{part}"] = f"lm_head.dense.{part}"
        names[f"lm_head.layer_norm.{part}"] = f"lm_head.layer_norm.{part}"
        if config.contact_head:
            names[f"contact_head.{part}"] = f"{_CONTACT}{part}"
    names["lm_head.decoder.weight"] = "lm_head.decoder.weight"
    names["lm_head.bias"] = "lm_head.bias"

    wanted = [n for v in names.values() for n in ([v] if isinstance(v, str) else v)]
    missing = [n for n in wanted if n not in esm]
    unexpected = sorted(set(esm) - set(wanted))
    if missing or unexpected:
        raise LrgenError(f"{source}: not the NTv2 ESM layout of {CONFIG_NAME}: missing {missing[:3]}"
                         f"{'...' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}"
                         f"{'...' if len(unexpected) > 3 else ''}")
    out: dict[str, torch.Tensor] = {}
    for dst, src in names.items():
        if isinstance(src, list):
            out[dst] = torch.cat([esm[n] for n in src])
        elif dst.endswith("mlp.gate_up"):  # silu(x1) * x2 with [x1, x2] = dense(x): x1 is the gate
            gate, up = esm[src].chunk(2, dim=0)
            out[dst.replace("gate_up", "gate.weight")], out[dst.replace("gate_up", "up.weight")] = gate, up
        else:
            out[dst] = esm[src]
    return out


def _load_esm(directory: Path, data: dict[str, Any]) -> NTv2Model:
    from lrgen.models.ntv2 import NTv2Model

    config_path = directory / CONFIG_NAME
    vocab = directory / VOCAB_TXT
    if vocab.is_file():
        tokenizer = KmerTokenizer.from_vocab_txt(vocab, prepend_cls=True)
    elif data.get("vocab_size") == NTV2_VOCAB_SIZE:
        tokenizer = KmerTokenizer(prepend_cls=True)
    else:
        raise LrgenError(f"{vocab}: missing, and vocab_size {data.get('vocab_size')} is not the 6-mer vocabulary's "
                         f"{NTV2_VOCAB_SIZE}: put the checkpoint's {VOCAB_TXT} here")
    for key, expected in (("mask_token_id", tokenizer.mask_id), ("pad_token_id", tokenizer.pad_id),
                          ("vocab_size", tokenizer.vocab_size)):
        if data.get(key) != expected:
            raise LrgenError(f"{config_path}: {key} is {data.get(key)!r}, the tokenizer's is {expected}")
    tensors, source = read_state_dict(directory)
    config = ntv2_config_from_esm(data, config_path, cls_token_id=tokenizer.cls_id,
                                  contact_head=f"{_CONTACT}weight" in tensors)
    model = NTv2Model(config)
    load_state(model, ntv2_tensors_from_esm(tensors, config, source), source)
    model.tokenizer = tokenizer
    return model


# ---- writing the official Caduceus hub layout --------------------------------------------------------------------

_CADUCEUS_AUTO_MAP = {
    "AutoConfig": "configuration_caduceus.CaduceusConfig",
    "AutoModel": "modeling_caduceus.Caduceus",
    "AutoModelForMaskedLM": "modeling_caduceus.CaduceusForMaskedLM",
}
_CADUCEUS_SPECIALS = {"bos_token": "[BOS]", "eos_token": "[SEP]", "sep_token": "[SEP]", "cls_token": "[CLS]",
                      "pad_token": "[PAD]", "mask_token": "[MASK]", "unk_token": "[UNK]"}


def export_caduceus_hub(model: LanguageModel, directory: str | Path, model_max_length: int = 131072) -> Path:
    """Write Caduceus ``model`` to ``directory`` (replaced atomically) in the official hub layout: ``config.json``
    (the official ``CaduceusConfig`` keys, ``architectures``, ``auto_map``, ``torch_dtype``),
    ``model.safetensors`` (official parameter names, tied tensors once) and the tokenizer files:
    ``tokenizer_config.json`` + ``special_tokens_map.json`` of the official ``CaduceusTokenizer`` for lrgen's
    default vocabulary, or the checkpoint's ``tokenizer.json`` with a ``PreTrainedTokenizerFast`` config.
    The official code files (``*_caduceus.py``, ``modeling_rcps.py``) are not written."""
    if model.family != "caduceus":
        raise LrgenError(f"export_caduceus_hub writes Caduceus models; this is a {model.family} model")
    directory = Path(directory)
    tmp = temporary_sibling(directory, "export")
    try:
        save_model(model, tmp)
        config = {**model.config.to_dict(), "architectures": ["CaduceusForMaskedLM"]}
        config.setdefault("auto_map", _CADUCEUS_AUTO_MAP)
        config["torch_dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        tokenizer = model.tokenizer
        if tokenizer == CHAR_TOKENIZER:
            tokenizer_config: dict[str, Any] = {
                "tokenizer_class": "CaduceusTokenizer",
                "auto_map": {"AutoTokenizer": ["tokenization_caduceus.CaduceusTokenizer", None]},
                "characters": ["A", "C", "G", "T", "N"],
                "complement_map": {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"},
                "model_max_length": model_max_length,
                "padding_side": "left",
                **_CADUCEUS_SPECIALS,
            }
            specials = dict(_CADUCEUS_SPECIALS)
        else:  # read from the checkpoint's tokenizer.json, which save_model wrote back
            specials = {f"{role}_token": tokenizer.vocab[getattr(tokenizer, f"{role}_id")]
                        for role in ("mask", "pad", "unk")}
            tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
                                **specials}
        (tmp / TOKENIZER_CONFIG).write_text(json.dumps(tokenizer_config, indent=2) + "\n")
        (tmp / SPECIAL_TOKENS_MAP).write_text(json.dumps(specials, indent=2) + "\n")
        replace_dir(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory
