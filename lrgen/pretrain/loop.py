"""The pretraining loop: AdamW, warm-up + cosine, clipping, accumulation, bf16 autocast, validation, checkpoints.

Everything random in a step is a function of ``(seed, rank, batch index)`` (windows, reverse-complement
augmentation, masking), and a checkpoint stores the model, optimizer, scheduler, torch RNG and the sampler counter,
so a resumed run repeats the losses of an uninterrupted one. Under torchrun the model is wrapped in DDP (or sharded
with FSDP2 when ``fsdp``), each rank draws its own windows, metrics are summed over ranks, and only rank 0 writes files
or shows progress. With FSDP every rank takes part in validation and in gathering the full weights and optimizer state
that rank 0 writes, so checkpoints keep the layout of an unsharded run. With a ``time_limit`` the run stops before a
step that would end past it (judged by the slowest step of this invocation, validation and checkpoint included; the
first, which compiles kernels, only until there is another), writes a checkpoint and returns a summary with
``stopped = "time limit"``; ``resume`` continues it as if uninterrupted.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import torch

from lrgen.errors import LrgenError
from lrgen.pretrain import checkpoints as ckpt
from lrgen.pretrain.batch import largest_batch
from lrgen.pretrain.config import PretrainConfig, load_saved_config, read_config_file, resolve_config, save_config
from lrgen.pretrain.data import (
    WindowSampler,
    derive_seed,
    load_species,
    parse_region,
    read_fasta_list,
    split_segments,
    tokenize_windows,
    whole_segments,
)
from lrgen.models.compiled import compile_position_wise
from lrgen.pretrain.fsdp import check_fsdp, full_model_state, full_optimizer_state, load_full_optimizer_state, wrap_fsdp
from lrgen.runtime.distributed import Processes, processes, wrap_ddp
from lrgen.runtime.files import atomic_write_text
from lrgen.runtime.progress import progress_bar
from lrgen.runtime.schedule import warmup_cosine
from lrgen.pretrain.masking import MaskingScheme, mask_tokens, mlm_sums, summarize

METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "summary.json"
_VAL_STREAM = 0x7A1  # seed key of the validation windows, apart from every rank's training stream
_MASK_STREAM = 0x3A5  # seed key of the masking draws


def run_pretrain(flags: dict[str, Any], config_file: str | None = None) -> dict[str, Any]:
    """Resolve the configuration (a resumed run's saved config < ``config_file`` < ``flags``) and train."""
    given = {**(read_config_file(config_file) if config_file else {}), **{k: v for k, v in flags.items() if v is not None}}
    saved = load_saved_config(given["output"]) if given.get("resume") and given.get("output") else None
    return train(resolve_config(flags, config_file, base=saved))


def train(config: PretrainConfig) -> dict[str, Any]:
    """Run (or resume) the pretraining described by ``config``; returns the run summary (also ``summary.json``).

    ``config.fsdp`` shards the model over the torchrun processes with FSDP2 instead of replicating it with DDP.
    """
    config.validate()
    with processes(config.device) as info:
        if config.fsdp:
            check_fsdp(info)
        with deterministic_algorithms(config.deterministic):
            return _Trainer(config, info).run()


@contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """With ``enabled``, PyTorch's deterministic kernels (and a fixed cuBLAS workspace) inside the block, so a run on
    a GPU repeats bit for bit; otherwise some backward kernels accumulate in a varying order (runs differ by ~1e-3)."""
    if not enabled:
        yield
        return
    before, workspace = torch.are_deterministic_algorithms_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        if workspace is None:
            del os.environ["CUBLAS_WORKSPACE_CONFIG"]


def _initial_model(config: PretrainConfig, resume_from: Path | None):
    """The checkpoint resumed from; else the given model (a preset initialised with ``seed``)."""
    from lrgen.models.resolve import resolve_model

    return resolve_model(str(resume_from) if resume_from is not None else config.model, seed=config.seed).model


class _Trainer:
    def __init__(self, config: PretrainConfig, info: Processes) -> None:
        self.clock = time.perf_counter()  # the time limit counts from here: data and model loading included
        self.config = config
        self.info = info
        self.fsdp = config.fsdp
        self.run_dir = Path(config.output)
        self.resume_from = ckpt.latest_checkpoint(self.run_dir) if self.run_dir.is_dir() else None
        if config.resume and self.resume_from is None and load_saved_config(self.run_dir) is None:
            raise LrgenError(f"{self.run_dir}: nothing to resume (no checkpoints/latest); drop --resume to start")
        if not config.resume and self.resume_from is not None:
            raise LrgenError(f"{self.run_dir} already holds a run: pass --resume to continue it or choose another "
                             "-o/--output")

        self.model = _initial_model(config, self.resume_from).to(info.device).train()
        wanted = config.compile if config.compile is not None else (
            info.device.type == "cuda" and bool(self.model.position_wise) and not self.fsdp)
        self.compiled = wanted and bool(compile_position_wise(self.model))
        use_bf16 = config.dtype in ("bfloat16", "bf16") or (config.dtype == "auto" and info.device.type == "cuda")
        self.autocast = (torch.autocast(info.device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext())
        self.dtype = "bfloat16" if use_bf16 else "float32"
        if config.batch_size == "auto":
            self._auto_batch()
        self.tokenizer = self.model.tokenizer  # a published backbone's own vocabulary when training on from one
        self.scheme = MaskingScheme.for_tokenizer(self.tokenizer)
        self.rc_augment = (not self.model.rc_equivariant) if config.rc_augment is None else config.rc_augment
        self._build_data()
        self.num_parameters = self.model.num_parameters()
        self._plain = None  # rank 0's unsharded copy that FSDP checkpoints are written from
        self.ddp = wrap_fsdp(self.model, info) if self.fsdp else wrap_ddp(self.model, info)

        self.tokens_per_step = config.context * config.batch_size * config.grad_accum * info.world_size
        self.total_steps = config.steps or math.ceil(config.tokens / self.tokens_per_step)
        self.warmup = (config.warmup_steps if config.warmup_steps is not None
                       else max(1, round(0.05 * self.total_steps)))
        decay = [p for _, p in self.model.named_parameters() if p.ndim >= 2]
        no_decay = [p for _, p in self.model.named_parameters() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr, betas=(0.9, 0.95),
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(self.total_steps, self.warmup, config.min_lr_ratio)
        )
        self.step = 0
        self.tokens = 0
        self.best_val = math.inf
        if self.resume_from is not None:
            self._load_state(ckpt.load_training_state(self.resume_from))

    def _auto_batch(self) -> None:
        """Resolve ``--batch-size auto``: a resumed run keeps its saved batch; else the largest that fits."""
        saved = load_saved_config(self.run_dir) if self.resume_from is not None else None
        if saved is not None and isinstance(saved.get("batch_size"), int):
            self.config.batch_size = saved["batch_size"]
            return
        batch, peak = largest_batch(self.model, self.config.context, self.autocast, self.info.device,
                                    ddp=self.info.world_size > 1 and not self.fsdp)
        batch, peak = self.info.broadcast((batch, peak))  # one batch for all ranks: rank 0's (same GPUs)
        self.config.batch_size = batch
        if self.info.is_main:
            print(f"lrgen pretrain: --batch-size auto: {batch} windows of {self.config.context:,} bases "
                  f"(a step's peak {peak:.1f} GB)", file=sys.stderr)

    # ---- data -------------------------------------------------------------------------------------------------
    def _build_data(self) -> None:
        c = self.config
        files = list(c.fasta) + (read_fasta_list(c.fasta_list) if c.fasta_list else [])
        species = [load_species(p) for p in files]
        regions = [parse_region(r) for r in c.val_region]
        val_fraction = c.val_fraction if c.val_fraction is not None else (0.0 if (c.val_fasta or regions) else 0.02)
        train_segments, val_segments = split_segments(species, regions, val_fraction)
        val_species = [load_species(p) for p in c.val_fasta]
        val_segments += whole_segments(val_species, offset=len(species))
        self.sampler = WindowSampler(
            species, train_segments, c.context, weights=c.weights, max_n_fraction=c.max_n_fraction,
            rc_augment=self.rc_augment, seed=c.seed, rank=self.info.rank,
        )
        self.val_batches: list[tuple[torch.Tensor, torch.Tensor]] = []
        if val_segments:
            longest = max(seg.end - seg.start for seg in val_segments)
            if longest < c.context:
                raise LrgenError(f"the validation data's longest stretch is {longest} bp, shorter than the context "
                                 f"({c.context} bp): raise --val-fraction or give a longer --val-region/--val-fasta")
            val_sampler = WindowSampler(species + val_species, val_segments, c.context,
                                        max_n_fraction=c.max_n_fraction, seed=derive_seed(c.seed, _VAL_STREAM))
            left, index = c.val_windows, 0
            while left > 0:
                size = min(left, c.batch_size)
                ids = tokenize_windows(val_sampler.draw(index, size), self.tokenizer)
                gen = torch.Generator().manual_seed(derive_seed(c.seed, _VAL_STREAM, _MASK_STREAM, index))
                self.val_batches.append(mask_tokens(ids, self.scheme, gen, c.mask_prob))
                left, index = left - size, index + 1

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        index, windows = self.sampler.next_batch(self.config.batch_size)
        ids = tokenize_windows(windows, self.tokenizer)
        gen = torch.Generator().manual_seed(derive_seed(self.config.seed, self.info.rank, _MASK_STREAM, index))
        inputs, labels = mask_tokens(ids, self.scheme, gen, self.config.mask_prob)
        dev = self.info.device
        return inputs.to(dev, non_blocking=True), labels.to(dev, non_blocking=True)

    # ---- state ------------------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state = {
            "step": self.step,
            "tokens": self.tokens,
            "best_val": self.best_val,
            "world_size": self.info.world_size,
            "optimizer": full_optimizer_state(self.model, self.optimizer) if self.fsdp else self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
        }
        if self.info.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.info.device)
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        by_name = isinstance(state["optimizer"]["param_groups"][0]["params"][0], str)  # FSDP checkpoints
        if by_name != self.fsdp:
            written, give = ("with", "pass") if by_name else ("without", "drop")
            raise LrgenError(f"{self.resume_from}: this checkpoint was written {written} --fsdp; "
                             f"{give} --fsdp to resume it")
        if self.fsdp:
            load_full_optimizer_state(self.model, self.optimizer, state["optimizer"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.step, self.tokens, self.best_val = int(state["step"]), int(state["tokens"]), float(state["best_val"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and self.info.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.info.device)

    def _save(self, name: str, with_state: bool = True, update_latest: bool = True) -> None:
        """Write checkpoint ``name`` from rank 0; with FSDP every process must call this (it gathers the shards)."""
        model = self._gathered() if self.fsdp else self.model
        state = self._state() if with_state else None
        if self.info.is_main:
            ckpt.save_checkpoint(self.run_dir, name, model, state, update_latest=update_latest)

    def _gathered(self) -> torch.nn.Module | None:
        """On rank 0 an unsharded CPU model holding the FSDP model's current weights (``None`` elsewhere)."""
        from lrgen.models.registry import build_model

        weights = full_model_state(self.model)
        if not self.info.is_main:
            return None
        if self._plain is None:
            self._plain = build_model(self.model.config)
        self._plain.load_state_dict(weights)
        return self._plain

    # ---- steps ------------------------------------------------------------------------------------------------
    def _train_step(self) -> dict[str, float]:
        c = self.config
        self.optimizer.zero_grad(set_to_none=True)
        sums = torch.zeros(3, dtype=torch.float64, device=self.info.device)
        for micro in range(c.grad_accum):
            inputs, labels = self._batch()
            last = micro == c.grad_accum - 1
            if self.fsdp:
                self.model.set_requires_gradient_sync(last)
            sync = nullcontext() if (last or not self.info.distributed or self.fsdp) else self.ddp.no_sync()
            with sync:
                with self.autocast:
                    logits = self.ddp(inputs)
                loss_sum, count, correct = mlm_sums(logits, labels)
                (loss_sum / count.clamp(min=1) / c.grad_accum).backward()
            sums += torch.stack([loss_sum.detach().double(), count.double(), correct.double()])
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP
            grad_norm = grad_norm.full_tensor()
        self.optimizer.step()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.step += 1
        self.tokens += self.tokens_per_step
        loss_sum, count, correct = self.info.all_reduce_sum(sums).tolist()
        metrics = summarize(loss_sum, int(count), int(correct), self.scheme.bases_per_target)
        return {**metrics, "lr": lr, "grad_norm": float(grad_norm)}

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        self.model.eval()
        loss_sum = count = correct = 0.0
        for inputs, labels in self.val_batches:
            with self.autocast:
                logits = self.model(inputs.to(self.info.device))
            ls, n, k = mlm_sums(logits, labels.to(self.info.device))
            loss_sum, count, correct = loss_sum + float(ls), count + int(n), correct + int(k)
        self.model.train()
        return summarize(loss_sum, int(count), int(correct), self.scheme.bases_per_target)

    # ---- run --------------------------------------------------------------------------------------------------
    def _out_of_time(self, slowest: float) -> bool:
        """Whether one more step as slow as ``slowest`` would end past the time limit; under torchrun the processes
        agree (any one out of time stops them all)."""
        if self.config.time_limit is None:
            return False
        late = time.perf_counter() - self.clock + slowest > self.config.time_limit
        if self.info.distributed:
            late = bool(self.info.all_reduce_sum(torch.tensor([float(late)], device=self.info.device)).item())
        return late

    def run(self) -> dict[str, Any]:
        main = self.info.is_main
        metrics_path = self.run_dir / METRICS_NAME
        writer = None
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.run_dir)
            _truncate_metrics(metrics_path, self.step)
            writer = _tensorboard(self.run_dir, self.step)
        c = self.config
        last_train: dict[str, float] = {}
        last_val: dict[str, float] = {}
        started = time.perf_counter()
        first_step = self.step
        saved_step = first_step
        durations: list[float] = []  # the steps of this invocation, their validation and checkpoint included
        stopped = None
        on_gpu = self.info.device.type == "cuda"
        fields = ("loss {loss}", "{speed} tok/s") + (("{memory} GB",) if on_gpu else ())
        progress = progress_bar(fields=fields, show=main, transient=False)
        with progress, (metrics_path.open("a") if main else nullcontext()) as log:
            task = progress.add_task("pretrain", total=self.total_steps, completed=self.step, loss="-", speed="-",
                                     memory="-")
            while self.step < self.total_steps:
                if self._out_of_time(max(durations[1:] or durations or [0.0])):
                    stopped = "time limit"
                    break
                t0 = time.perf_counter()
                last_train = self._train_step()
                dt = time.perf_counter() - t0
                record = {"step": self.step, "split": "train", **last_train, "tokens": self.tokens,
                          "tokens_per_s": self.tokens_per_step / dt, "elapsed_s": time.perf_counter() - started}
                if on_gpu:
                    record["gpu_memory_gb"] = torch.cuda.max_memory_allocated(self.info.device) / 1e9
                final = self.step == self.total_steps
                takes_part = main or self.fsdp  # FSDP forwards and gathers need every rank
                if main:
                    _write(log, writer, record)
                if takes_part and self.val_batches and (self.step % c.eval_every == 0 or final):
                    last_val = self._validate()
                    if main:
                        _write(log, writer, {"step": self.step, "split": "val", **last_val, "tokens": self.tokens})
                    if last_val["loss"] < self.best_val:
                        self.best_val = last_val["loss"]
                        self._save(ckpt.BEST, with_state=False, update_latest=False)
                if takes_part and (self.step % c.save_every == 0 or final):
                    self._save(ckpt.step_name(self.step))
                    saved_step = self.step
                    if main:
                        ckpt.prune_checkpoints(self.run_dir, c.keep_checkpoints)
                durations.append(time.perf_counter() - t0)
                if main:
                    done = self.step - first_step
                    speed = done * self.tokens_per_step / (time.perf_counter() - started)
                    progress.update(task, completed=self.step, loss=f"{last_train['loss']:.4f}", speed=f"{speed:,.0f}",
                                    memory=f"{record.get('gpu_memory_gb', 0):.1f}")
            if stopped and self.step != saved_step and (main or self.fsdp):
                self._save(ckpt.step_name(self.step))
                if main:
                    ckpt.prune_checkpoints(self.run_dir, c.keep_checkpoints)
        seconds = time.perf_counter() - started
        summary = {
            "run_dir": str(self.run_dir),
            "model": c.model,
            "family": self.model.family,
            "parameters": self.num_parameters,
            "world_size": self.info.world_size,
            "dtype": self.dtype,
            "batch_size": self.config.batch_size,
            "compiled": self.compiled,
            "rc_augment": self.rc_augment,
            "steps": self.step,
            "total_steps": self.total_steps,
            "stopped": stopped,
            "tokens": self.tokens,
            "warmup_steps": self.warmup,
            "seconds": seconds,
            "tokens_per_s": (self.step - first_step) * self.tokens_per_step / seconds if seconds > 0 else math.nan,
            "gpu_memory_gb": torch.cuda.max_memory_allocated(self.info.device) / 1e9 if on_gpu else None,
            "train": last_train,
            "val": last_val,
            "best_val_loss": self.best_val if math.isfinite(self.best_val) else None,
        }
        if main:
            if writer is not None:
                writer.close()
            atomic_write_text(self.run_dir / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
        return summary


def _write(log, writer, record: dict[str, Any]) -> None:
    log.write(json.dumps(record) + "\n")
    log.flush()
    if writer is not None:
        for key, value in record.items():
            if key not in ("step", "split") and isinstance(value, (int, float)) and math.isfinite(value):
                writer.add_scalar(f"{record['split']}/{key}", value, record["step"])


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records after ``step`` (logged by an interrupted run after its last checkpoint) and a torn last line."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    atomic_write_text(path, "".join(line + "\n" for line in keep))


def _tensorboard(run_dir: Path, step: int):
    """A TensorBoard writer when tensorboard is installed, else ``None``."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=step or None)

