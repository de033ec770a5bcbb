"""The pretraining configuration: one dataclass, filled from a TOML/YAML/JSON file and command-line flags (flags win)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lrgen.errors import LrgenError
from lrgen.models.checkpoint import RUN_CONFIG_NAME
from lrgen.runtime.device import resolve_device
from lrgen.runtime.files import atomic_write_text
from lrgen.sizes import parse_duration, parse_size

CONFIG_NAME = RUN_CONFIG_NAME


@dataclass
class PretrainConfig:
    """Everything a pretraining run depends on; saved resolved as ``RUN_DIR/pretrain_config.json``.

    ``batch_size`` is the number of windows per process per micro-batch (``"auto"``: the largest power of two
    that fits on the GPU, saved resolved); one optimizer step sees ``batch_size * grad_accum * world_size`` windows of
    ``context`` bases. ``compile`` ``None`` compiles where it pays: on a GPU, for families with position-wise parts,
    without FSDP. ``tokens`` counts bases (nucleotides), so a k-mer model and a character model given the same budget
    see the same DNA. ``time_limit`` (seconds of wall time of this invocation) stops the run cleanly at a checkpoint
    before the time is up; it belongs to one invocation and is not saved with the run.
    """

    model: str = ""
    output: str = ""
    fasta: list[str] = field(default_factory=list)
    fasta_list: str | None = None
    weights: list[float] | None = None
    val_fasta: list[str] = field(default_factory=list)
    val_region: list[str] = field(default_factory=list)
    val_fraction: float | None = None
    context: int = 12_000
    steps: int | None = None
    tokens: int | None = None
    batch_size: int | str = 8
    grad_accum: int = 1
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int | None = None
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    mask_prob: float = 0.15
    max_n_fraction: float = 0.1
    rc_augment: bool | None = None
    eval_every: int = 500
    val_windows: int = 32
    save_every: int = 1000
    keep_checkpoints: int = 3
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    fsdp: bool = False
    compile: bool | None = None
    deterministic: bool = False
    resume: bool = False
    time_limit: float | None = None

    def validate(self) -> None:
        """Raise :class:`LrgenError` for a configuration that cannot run."""
        if not self.model:
            raise LrgenError("no model given: pass --model PRESET|DIR (e.g. caduceus-ps-tiny) or set `model` in --config")
        if not self.output:
            raise LrgenError("no run directory given: pass -o/--output RUN_DIR")
        if not self.fasta and not self.fasta_list:
            raise LrgenError("no training data: pass --fasta FILE (repeatable) or --fasta-list FILE")
        if self.steps is None and self.tokens is None:
            raise LrgenError("no budget: pass --steps N or --tokens N (bases, e.g. 100M)")
        if isinstance(self.batch_size, str) and self.batch_size != "auto":
            raise LrgenError(f"--batch-size must be a number of windows or auto, got {self.batch_size!r}")
        for name in ("grad_accum", "eval_every", "val_windows", "save_every", "keep_checkpoints",
                     *(("batch_size",) if self.batch_size != "auto" else ())):
            if getattr(self, name) < 1:
                raise LrgenError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise LrgenError(f"--steps must be at least 1, got {self.steps}")
        if self.compile and self.fsdp:
            raise LrgenError("--compile and --fsdp do not go together (FSDP swaps the parameters the compiled graphs "
                             "guard on); drop one of them")
        if not 0.0 < self.mask_prob < 1.0:
            raise LrgenError(f"--mask-prob must lie in (0, 1), got {self.mask_prob}")
        if not 0.0 <= self.max_n_fraction <= 1.0:
            raise LrgenError(f"--max-n-fraction must lie in [0, 1], got {self.max_n_fraction}")
        if self.val_fraction is not None and not 0.0 <= self.val_fraction < 1.0:
            raise LrgenError(f"--val-fraction must lie in [0, 1), got {self.val_fraction}")
        if self.dtype not in DTYPES:
            raise LrgenError(f"--dtype must be auto (bfloat16 on a GPU), bfloat16 or float32, got {self.dtype!r}")
        if self.lr <= 0:
            raise LrgenError(f"--lr must be positive, got {self.lr}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise LrgenError(f"--time-limit must be positive, got {self.time_limit}")
        resolve_device(self.device)  # the one --device error of every command, before any work


DTYPES = ("auto", "bfloat16", "bf16", "float32", "fp32")
#: settings renamed in 0.2, still read (with a notice) from config files and saved runs
RENAMED = {"out": "output", "val_every": "eval_every", "precision": "dtype"}
_FIELDS = {f.name: f for f in fields(PretrainConfig)}
_SIZE_KEYS = {"context", "tokens"}
_DURATION_KEYS = {"time_limit"}
_PER_INVOCATION = ("time_limit",)  # settings of one invocation, not saved with the run
_LIST_KEYS = {"fasta", "val_fasta", "val_region"}


def _normalise(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Keys with dashes or underscores, sizes as text ('12kb'), lists from scalars; unknown keys are an error."""
    out: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key in RENAMED:
            if source != "saved config":
                print(f"lrgen: {source}: setting {raw_key!r} is now {RENAMED[key]!r} (the old name is read until the "
                      "next release)", file=sys.stderr)
            key = RENAMED[key]
        if key not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise LrgenError(f"{source}: unknown setting {raw_key!r}; known settings: {known}")
        if value is None:
            continue
        if key in _SIZE_KEYS:
            value = parse_size(value)
        elif key in _DURATION_KEYS:
            value = parse_duration(value)
        elif key in _LIST_KEYS and isinstance(value, (str, os.PathLike)):
            value = [str(value)]
        elif key == "batch_size" and isinstance(value, str):
            value = _batch_size(value, source)
        elif key == "weights" and isinstance(value, str):
            try:
                value = [float(w) for w in value.split(",") if w.strip()]
            except ValueError:
                raise LrgenError(f"{source}: weights {value!r} must be comma-separated numbers, e.g. 1,1,2") from None
        out[key] = value
    return out


def _batch_size(text: str, source: str) -> int | str:
    """``auto`` or a whole number of windows, from a flag or a config file."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        where = "" if source == "flags" else f"{source}: "
        raise LrgenError(f"{where}--batch-size must be a number of windows or auto, got {text!r}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file (a flat table of flag names)."""
    path = Path(path)
    if not path.is_file():
        raise LrgenError(f"{path}: config file not found")
    suffix = path.suffix.lower()
    text = path.read_text()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                try:
                    import tomli as tomllib
                except ModuleNotFoundError:
                    raise LrgenError(f"{path}: reading TOML on Python 3.10 needs `pip install tomli`") from None
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ModuleNotFoundError:
                raise LrgenError(
                    f"{path}: reading YAML needs PyYAML (`pip install pyyaml`); or write the config as TOML"
                ) from None
            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise LrgenError(f"{path}: config files must end in .toml, .yaml, .yml or .json")
    except LrgenError:
        raise
    except Exception as exc:  # parser errors of the three formats
        raise LrgenError(f"{path}: cannot parse config: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise LrgenError(f"{path}: a config file must hold a table of settings, got {type(data).__name__}")
    return _normalise(data, str(path))


def resolve_config(flags: dict[str, Any], config_file: str | Path | None = None,
                   base: dict[str, Any] | None = None) -> PretrainConfig:
    """Merge ``base`` (e.g. a resumed run's saved config) < ``config_file`` < ``flags`` (``None`` flags are unset)."""
    merged: dict[str, Any] = dict(_normalise(base, "saved config") if base else {})
    if config_file is not None:
        merged.update(read_config_file(config_file))
    merged.update(_normalise({k: v for k, v in flags.items() if v is not None}, "flags"))
    config = PretrainConfig(**merged)
    config.validate()
    return _absolute_paths(config)


def _absolute_paths(config: PretrainConfig) -> PretrainConfig:
    """File settings as absolute paths (relative ones are relative to the working directory), so a saved config
    resumes from anywhere; ``model`` only when it names an existing folder rather than a preset."""
    absolute = lambda p: str(Path(p).expanduser().resolve())  # noqa: E731
    config.output = absolute(config.output)
    config.fasta = [absolute(p) for p in config.fasta]
    config.val_fasta = [absolute(p) for p in config.val_fasta]
    if config.fasta_list:
        config.fasta_list = absolute(config.fasta_list)
    if Path(config.model).expanduser().exists():
        config.model = absolute(config.model)
    return config


def save_config(config: PretrainConfig, run_dir: str | Path) -> Path:
    """Write the resolved config atomically as ``run_dir/pretrain_config.json`` (without the per-invocation
    ``time_limit``)."""
    path = Path(run_dir) / CONFIG_NAME
    saved = {k: v for k, v in asdict(config).items() if k not in _PER_INVOCATION}
    atomic_write_text(path, json.dumps(saved, indent=2) + "\n")
    return path


def load_saved_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The saved config of a run directory as a dict, or ``None`` when it has none."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise LrgenError(f"{path}: damaged (not JSON); start the run over (rm -r {run_dir})") from None
