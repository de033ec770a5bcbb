"""Pretraining config: TOML/YAML/JSON files, flags win, sizes, errors."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest

from lrgen.errors import LrgenError
from lrgen.pretrain.config import PretrainConfig, load_saved_config, read_config_file, resolve_config, save_config

BASE = {"model": "hawk-tiny", "output": "run", "fasta": ["a.fa"], "steps": 10}


def test_toml_file_then_flags_win(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('model = "hawk-tiny"\noutput = "r"\nfasta = ["x.fa", "y.fa"]\ncontext = "2kb"\nbatch-size = 4\n'
                   'lr = 0.01\ntokens = "1M"\nval-region = "20:1000000-4000000"\n')
    config = resolve_config({"lr": 0.001, "batch_size": None, "context": "4k"}, cfg)
    assert config.lr == 0.001  # flag wins
    assert config.batch_size == 4  # None flag is unset: the file's value stays
    assert config.context == 4000 and config.tokens == 1_000_000
    assert config.fasta == [str(Path("x.fa").resolve()), str(Path("y.fa").resolve())]  # absolute, from the cwd
    assert config.output == str(Path("r").resolve()) and config.model == "hawk-tiny"
    assert config.val_region == ["20:1000000-4000000"]


def test_yaml_and_json_files(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("model: hawk-tiny\nout: r\nfasta: x.fa\nsteps: 5\nweights: 1,2\n")
    config = resolve_config({}, y)  # `out`: the spelling before 0.2, read with a notice
    assert config.fasta == [str(Path("x.fa").resolve())] and config.steps == 5 and config.weights == [1.0, 2.0]
    assert config.output == str(Path("r").resolve())
    j = tmp_path / "c.json"
    j.write_text(json.dumps({**BASE, "val_fraction": 0.1}))
    assert resolve_config({}, j).val_fraction == 0.1


def test_yaml_without_pyyaml_is_a_clear_error(tmp_path, monkeypatch):
    y = tmp_path / "c.yml"
    y.write_text("model: hawk-tiny\n")
    real_import = builtins.__import__

    def no_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ModuleNotFoundError("No module named 'yaml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    with pytest.raises(LrgenError, match="PyYAML"):
        read_config_file(y)


@pytest.mark.parametrize(
    "text, match",
    [("bogus = 1\n", "unknown setting 'bogus'"), ("model = \n", "cannot parse"), ("context = 'twelve'\n", "length")],
)
def test_bad_files(tmp_path, text, match):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(LrgenError, match=match):
        read_config_file(cfg)


def test_missing_and_invalid_settings(tmp_path):
    with pytest.raises(LrgenError, match="config file not found"):
        read_config_file(tmp_path / "nope.toml")
    with pytest.raises(LrgenError, match="no budget"):
        resolve_config({**BASE, "steps": None})
    with pytest.raises(LrgenError, match="no training data"):
        resolve_config({**BASE, "fasta": None})
    with pytest.raises(LrgenError, match="mask-prob"):
        resolve_config({**BASE, "mask_prob": 1.5})


def test_saved_config_round_trip_and_base(tmp_path):
    config = resolve_config(BASE)
    save_config(config, tmp_path)
    saved = load_saved_config(tmp_path)
    assert PretrainConfig(**saved) == config
    resumed = resolve_config({"steps": 20, "resume": True}, base=saved)
    assert resumed.steps == 20 and resumed.model == "hawk-tiny" and resumed.resume
    assert load_saved_config(tmp_path / "none") is None


def test_batch_size_is_a_number_or_auto(tmp_path):
    flags = dict(model="caduceus-ps-tiny", output=str(tmp_path / "r"), fasta=["g.fa"], steps=1)
    assert resolve_config({**flags, "batch_size": "Auto"}).batch_size == "auto"
    assert resolve_config({**flags, "batch_size": "16"}).batch_size == 16
    with pytest.raises(LrgenError, match="^--batch-size must be a number of windows or auto, got 'x'$"):
        resolve_config({**flags, "batch_size": "x"})
