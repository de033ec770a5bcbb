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


@torch.no_grad()
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("preset", ["caduceus-ps-tiny", "hawk-tiny", "ntv2-tiny"])
def test_weights_saved_in_16_bits_load_back_into_float32(tmp_path, preset, dtype):
    model = lrgen.load_model(preset)
    save_model(model, tmp_path / "ck", dtype=dtype)
    stored = load_file(str(tmp_path / "ck" / "model.safetensors"))
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {dtype}
    loaded = lrgen.load_model(tmp_path / "ck")
    for name, tensor in loaded.state_dict().items():
        if tensor.is_floating_point():
            assert tensor.dtype == torch.float32
            assert torch.equal(tensor, model.state_dict()[name].to(dtype).float()), name
    assert (tmp_path / "ck" / "model.safetensors").stat().st_size < 0.6 * 4 * model.num_parameters() + 50_000


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
    with pytest.raises(LrgenError, match="config.json: model_type 'gpt2': not one of caduceus, hawk, ntv2"):
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


# ---- weight files other than model.safetensors -------------------------------------------------------------------


def _perturbed(preset: str):
    model = lrgen.load_model(preset)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def _shard(state: dict[str, torch.Tensor], folder, kind: str) -> None:
    """Write ``state`` as two shards plus the Hugging Face index (``kind``: safetensors or bin)."""
    names = sorted(state)
    files = {}
    for n, part in enumerate((names[: len(names) // 2], names[len(names) // 2 :])):
        stem = "model" if kind == "safetensors" else "pytorch_model"
        file = f"{stem}-0000{n + 1}-of-00002.{kind}"
        chunk = {k: state[k].contiguous() for k in part}
        if kind == "safetensors":
            save_file(chunk, str(folder / file))
        else:
            torch.save(chunk, folder / file)
        files.update(dict.fromkeys(part, file))
    index = "model.safetensors.index.json" if kind == "safetensors" else "pytorch_model.bin.index.json"
    (folder / index).write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": files}))


@torch.no_grad()
@pytest.mark.parametrize("form", ["bin", "sharded-safetensors", "sharded-bin"])
def test_bin_and_sharded_weights_load_identically(tmp_path, form):
    model = _perturbed("caduceus-ps-tiny")
    folder = save_model(model, tmp_path / "ck")
    stored = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    if form == "bin":  # every state-dict name, tied names sharing one storage, as torch.save(state_dict()) writes
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    else:
        _shard(stored, folder, form.split("-")[1])
    loaded = lrgen.load_model(folder)
    assert torch.equal(loaded(IDS), model(IDS))
    assert loaded.lm_head.lm_head.weight is loaded.backbone.embeddings["word_embeddings"].embedding.weight


def test_sharded_index_errors_name_the_file(tmp_path):
    folder = save_model(lrgen.load_model("caduceus-ph-tiny"), tmp_path / "ck")
    stored = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    _shard(stored, folder, "safetensors")
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(LrgenError, match=r"model-00002-of-00002.safetensors: missing \(named by model.safetensors.index"):
        lrgen.load_model(folder)
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"x": "../elsewhere.safetensors"}}))
    with pytest.raises(LrgenError, match="shard '../elsewhere.safetensors' is not a file name in the same folder"):
        lrgen.load_model(folder)
    index.write_text("[]")
    with pytest.raises(LrgenError, match="model.safetensors.index.json: not a sharded-checkpoint index"):
        lrgen.load_model(folder)


class _Payload:
    """Unpickling this runs ``exec``: what a malicious pytorch_model.bin would do."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_pickle_that_would_run_code_is_refused_not_run(tmp_path):
    folder = save_model(lrgen.load_model("caduceus-ph-tiny"), tmp_path / "ck")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    torch.save({"caduceus.backbone.norm_f.weight": torch.ones(32), "x": _Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(LrgenError) as err:
        lrgen.load_model(folder)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{folder / 'pytorch_model.bin'}: refused: not loadable as "
                                                       "weights only (Unsupported global: GLOBAL exec)")
    assert not marker.exists()
    torch.save({"weights": [1, 2]}, folder / "pytorch_model.bin")  # loads weights-only, but is no state dict
    with pytest.raises(LrgenError, match="pytorch_model.bin: not a state dict"):
        lrgen.load_model(folder)
    torch.save({"a": torch.ones(3)}, folder / "pytorch_model.bin")
    (folder / "pytorch_model.bin").write_bytes((folder / "pytorch_model.bin").read_bytes()[:200])  # truncated
    with pytest.raises(LrgenError, match="pytorch_model.bin: cannot read"):
        lrgen.load_model(folder)


def test_the_package_never_unpickles_beyond_weights_only():
    """Every torch.load reads weights only, and nothing imports or calls pickle (a file must never run code)."""
    import re
    from pathlib import Path

    package = Path(lrgen.__file__).parent
    offences = []
    for path in sorted(package.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            loads = re.findall(r"torch\.load\(([^)]*)", code)
            if ("weights_only=False" in code or re.search(r"^\s*(import|from)\s+c?pickle\b|\bc?pickle\.\w+\(", code)
                    or any("weights_only=True" not in args for args in loads)
                    or re.search(r"allow_pickle\s*=\s*True", code)):
                offences.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    assert not offences, offences


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated", None])
def test_a_damaged_training_state_is_one_line(tmp_path, damage):
    folder = save_model(lrgen.load_model("hawk-tiny"), tmp_path / "run" / "checkpoints" / "step-0000001",
                        training_state={"step": 1})
    path = folder / "training_state.pt"
    if damage is None:  # a pickle that would run code
        torch.save({"step": 1, "x": _Payload(tmp_path / "pwned")}, path)
    else:
        path.write_bytes(damage)
    with pytest.raises(LrgenError) as err:
        load_training_state(folder)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: not a readable training state")
    assert f"rm -r {tmp_path / 'run'}" in message and not (tmp_path / "pwned").exists()
