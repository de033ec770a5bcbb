"""Presets, parameter counts, and how load_model resolves names."""

from __future__ import annotations

import pytest
import torch

import lrgen
from lrgen.errors import LrgenError
from lrgen.models import registry
from lrgen.models.registry import family_module, list_presets


def test_presets_listed_with_counts():
    presets = {p["name"]: p for p in list_presets()}
    for name in ("caduceus-ps-131k", "caduceus-ps-50m", "caduceus-ph-50m", "caduceus-ps-tiny", "caduceus-ph-tiny",
                 "hawk-50m", "ntv2-50m"):
        assert name in presets and presets[name]["description"]
        assert presets[name]["family"] == name.split("-")[0]
    for name, p in presets.items():
        if name.endswith("-50m"):
            assert 40e6 <= p["parameters"] <= 60e6, (name, p["parameters"])
        if name.endswith("-tiny"):
            assert p["parameters"] < 1e6
    # caduceus-ps-131k: the released architecture (d_model 256, 16 layers, d_state 16, expand 2)
    assert presets["caduceus-ps-131k"]["parameters"] == 7_725_312


def test_bundled_models_are_listed_apart_from_presets():
    from lrgen.models.registry import list_bundled

    bundled = {p["name"]: p for p in list_bundled()}
    assert "caduceus-ps-demo" in bundled and bundled["caduceus-ps-demo"]["family"] == "caduceus"
    assert not set(bundled) & {p["name"] for p in list_presets()}
    assert lrgen.models.resolve_model("caduceus-ps-demo").trained and not lrgen.models.resolve_model("hawk-tiny").trained


def test_preset_count_matches_a_real_instance():
    model = lrgen.load_model("caduceus-ps-tiny")
    count = next(p["parameters"] for p in list_presets() if p["name"] == "caduceus-ps-tiny")
    assert model.num_parameters() == count
    assert not model.training


def test_device_and_dtype():
    model = lrgen.load_model("caduceus-ph-tiny", device="cpu", dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model(torch.tensor([[7, 8, 9, 10]])).shape == (1, 4, 12)


def test_unknown_names():
    with pytest.raises(LrgenError, match="unknown model 'caduceus-xl'.*caduceus-ps-tiny"):
        lrgen.load_model("caduceus-xl")
    with pytest.raises(LrgenError, match="unknown model 'no such thing'"):
        lrgen.load_model("no such thing")


def test_hub_id_offline_with_an_empty_cache_says_what_to_download(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(LrgenError) as err:
        lrgen.load_model("someone/some-model")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot download someone/some-model: no network (or HF_HUB_OFFLINE=1)")
    assert "`hf download someone/some-model --local-dir DIR`" in message and "pass it as the model" in message


def test_hub_id_offline_loads_from_a_filled_cache(monkeypatch, tmp_path):
    """A snapshot in the Hugging Face cache layout (refs/main → snapshots/<commit>/) loads without network."""
    from huggingface_hub import constants

    model = lrgen.load_model("caduceus-ph-tiny")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--someone--tiny-caduceus"
    lrgen.models.save_model(model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    ids = torch.tensor([[7, 8, 9, 10, 11]])
    with torch.no_grad():
        assert torch.equal(lrgen.load_model("someone/tiny-caduceus")(ids), model(ids))


def test_hub_download_asks_for_the_layout_files(monkeypatch, tmp_path):
    """Config, tokenizer files and safetensors weights first; .bin weights only where no safetensors came."""
    import huggingface_hub

    calls: list[list[str]] = []

    def fake(repo_id, allow_patterns):
        calls.append(allow_patterns)
        if len(calls) == 2:
            (tmp_path / "pytorch_model.bin").write_bytes(b"")
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    assert registry.download("someone/bin-only") == tmp_path
    assert len(calls) == 2
    for name in ("config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert all(name in c for c in calls)
    assert {"model*.safetensors", "model.safetensors.index.json"} <= set(calls[0]) and "pytorch_model*.bin" not in calls[0]
    assert {"pytorch_model*.bin", "pytorch_model.bin.index.json"} <= set(calls[1])


def test_missing_family_module_is_reported(monkeypatch):
    from lrgen.models import families

    monkeypatch.setattr(families, "FAMILIES", (*families.FAMILIES, "nosuchfamily"))
    with pytest.raises(LrgenError, match="'nosuchfamily' is not available: module lrgen.models.nosuchfamily is missing"):
        family_module("nosuchfamily")
    with pytest.raises(LrgenError, match="unknown model family 'gpt'"):
        family_module("gpt")
