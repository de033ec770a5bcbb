"""Checkpoint directories: round trips, tied tensors, run directories with a ``latest`` pointer, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import lrgen
from lrgen.errors import LrgenError
from lrgen.models import mark_latest, resolve_checkpoint, save_model
from lrgen.pretrain.checkpoints import load_training_state
from lrgen.models.checkpoint import tied_groups

IDS = torch.tensor([[7, 8, 9, 10, 11, 3, 7, 7, 10, 9, 8, 7, 10]])


@torch.no_grad()
@pytest.mark.parametrize("preset", ["caduceus-ps-tiny", "caduceus-ph-tiny"])
def test_save_load_round_trip_is_identical(tmp_path, preset):
    model = lrgen.load_model(preset)
    with torch.no_grad():  # move away from the preset's init so that loading, not re-seeding, is tested
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_model(model, tmp_path / "ck", training_state={"step": 7, "lr": 1e-3})
    loaded = lrgen.load_model(tmp_path / "ck")
    assert torch.equal(loaded(IDS), model(IDS))
    assert torch.equal(loaded.embed(IDS), model.embed(IDS))
    assert loaded.config == model.config
    assert load_training_state(tmp_path / "ck") == {"step": 7, "lr": 1e-3}  # read with weights_only=True


def test_tied_tensors_stored_once_and_retied(tmp_path):
    model = lrgen.load_model("caduceus-ph-tiny")
    save_model(model, tmp_path / "ck")
    stored = load_file(str(tmp_path / "ck" / "model.safetensors"))
    groups = [g for g in tied_groups(model) if len(g) > 1]
    assert groups and all(sum(name in stored for name in g) == 1 for g in groups)
    assert "lm_head.weight" not in stored and "caduceus.backbone.embeddings.word_embeddings.weight" in stored
    loaded = lrgen.load_model(tmp_path / "ck")
    assert loaded.lm_head.weight is loaded.backbone.embeddings["word_embeddings"].weight


def test_tied_tensor_stored_under_another_name_loads(tmp_path):
    model = lrgen.load_model("caduceus-ph-tiny")
    save_model(model, tmp_path / "ck")
    path = tmp_path / "ck" / "model.safetensors"
    stored = load_file(str(path))
    stored["lm_head.weight"] = stored.pop("caduceus.backbone.embeddings.word_embeddings.weight")
    save_file(stored, str(path))
    assert torch.equal(lrgen.load_model(tmp_path / "ck")(IDS), model(IDS))


def test_overwrite_is_atomic_and_leaves_no_temporaries(tmp_path):
    save_model(lrgen.load_model("caduceus-ph-tiny"), tmp_path / "ck")
    save_model(lrgen.load_model("caduceus-ps-tiny"), tmp_path / "ck")
    assert lrgen.load_model(tmp_path / "ck").config.rcps is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_run_directory_latest_pointer(tmp_path):
    run = tmp_path / "run"
    ph, ps = lrgen.load_model("caduceus-ph-tiny"), lrgen.load_model("caduceus-ps-tiny")
    save_model(ph, run / "checkpoints" / "step-100")
    save_model(ps, run / "checkpoints" / "step-200")
    mark_latest(run / "checkpoints", "step-200")
    assert resolve_checkpoint(run) == run / "checkpoints" / "step-200"
    assert resolve_checkpoint(run / "checkpoints") == run / "checkpoints" / "step-200"
    assert lrgen.load_model(run).config.rcps is True
    mark_latest(run / "checkpoints", "step-100")
    assert lrgen.load_model(run).config.rcps is False
    with pytest.raises(LrgenError, match="not a checkpoint directory"):
        mark_latest(run / "checkpoints", "step-300")
    (run / "checkpoints" / "latest").write_text("step-300\n")
    with pytest.raises(LrgenError, match="latest: names checkpoint 'step-300'"):
        lrgen.load_model(run)


def test_bad_directories_give_one_line_errors(tmp_path):
    with pytest.raises(LrgenError, match="no config.json and no checkpoints/latest"):
        lrgen.load_model(tmp_path)
    save_model(lrgen.load_model("caduceus-ph-tiny"), tmp_path / "ck")
    config_path = tmp_path / "ck" / "config.json"
    good = config_path.read_text()
    config_path.write_text(good.replace('"n_layer": 2,', '"n_layer": 2'))
    with pytest.raises(LrgenError, match=r"config.json: line \d+: invalid JSON"):
        lrgen.load_model(tmp_path / "ck")
    config_path.write_text(json.dumps({**json.loads(good), "model_type": "gpt2"}))
    with pytest.raises(LrgenError, match="model_type 'gpt2' is not one of"):
        lrgen.load_model(tmp_path / "ck")
    config_path.write_text(json.dumps({**json.loads(good), "d_model": 48}))
    with pytest.raises(LrgenError, match="weights do not match config.json: size mismatch"):
        lrgen.load_model(tmp_path / "ck")
    config_path.write_text(json.dumps({**json.loads(good), "n_layer": 1}))
    with pytest.raises(LrgenError, match=r"unexpected \['caduceus.backbone.layers.1"):
        lrgen.load_model(tmp_path / "ck")
    config_path.write_text(good)
    (tmp_path / "ck" / "model.safetensors").unlink()
    with pytest.raises(LrgenError, match="model.safetensors: missing"):
        lrgen.load_model(tmp_path / "ck")
