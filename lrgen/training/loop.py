"""The fine-tuning loop every job shares: a backbone with a head, AdamW, warm-up and cosine decay, early stopping on
the job's validation windows (never test), bf16 autocast on GPU, resumable state, progress bars, DDP under
``torchrun``.

A job (GLRB, user data) hands the loop a :class:`TrainingSet`: its train and validation
:class:`~lrgen.training.windows.Windows`, how to build the head for a backbone, the label kind and the primary
metric. The output folder holds the best model so far (a fine-tuned folder, :mod:`lrgen.models.finetuned`) and
``train_state.pt``, the state to resume from (tensors only, read with ``weights_only=True``; written atomically
after every validation). With a frozen backbone the pooled features are computed once and only the head is trained.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from lrgen.errors import LrgenError
from lrgen.models.compiled import compile_position_wise
from lrgen.models.finetuned import TASK_FILE, FinetunedModel, HeadSpec, save_finetuned
from lrgen.runtime.device import autocast
from lrgen.runtime.files import atomic_path, atomic_write_text
from lrgen.runtime.schedule import default_warmup, warmup_cosine
from lrgen.training.batches import to_device
from lrgen.training.inference import batch_inputs, loader, pooled_features
from lrgen.training.metrics import macro
from lrgen.training.windows import Windows

STATE_FILE = "train_state.pt"


@dataclass(kw_only=True)
class TrainOptions:
    """What the loop takes from every fine-tuning job's options (the CLI flags carry the same names); ``task`` is
    the task as the user named it, ``output`` the run folder."""

    task: str
    model: str
    context: int
    output: str
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 8
    lr: float = 1e-4  # backbone learning rate
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int | None = None  # default: 5% of the run's steps
    patience: int = 3  # validations without improvement before stopping
    eval_every: int | None = None  # steps between validations (default: once per epoch)
    freeze_backbone: bool = False
    conjoin: bool = False
    hidden: int = 256
    max_n_fraction: float = 0.5
    device: str = "auto"
    seed: int = 0
    num_workers: int = 0
    compile: bool = False  # torch.compile the backbone's position-wise parts
    resume: bool = False


@dataclass
class TrainingSet:
    """What a job hands the loop: its windows, the head of a backbone and how the labels are scored.

    ``spec`` builds the head for the resolved backbone; ``binary`` labels are trained with a logistic loss (else
    mean squared error); ``metric`` (``auroc``, ``auprc``, ``r2`` or ``pearson``, macro over labels) ranks the
    validations; ``source`` names the input in messages; ``extra`` goes into the folder's ``task.json``.
    """

    name: str
    train: Windows
    valid: Windows | None
    spec: Callable[[torch.nn.Module], HeadSpec]
    binary: bool
    metric: str
    source: str
    tissues: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def _loss(binary: bool, out: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    out = out.float()
    if binary:
        return F.binary_cross_entropy_with_logits(out, label)
    return F.mse_loss(out, label)


def _save_state(state: dict, path: Path) -> None:
    """The resumable state: tensors (weights, optimizer) by torch.save of plain containers, the rest as JSON."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling raises many types; none is shown as a traceback
        raise LrgenError(f"{path}: not a readable fine-tuning state ({type(err).__name__}); remove it to start "
                         "over") from None


class _Batches:
    """Deterministic shuffled index batches of one rank for epoch ``e``, starting after ``skip`` batches."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int, skip: int = 0):
        order = np.random.default_rng(seed + epoch).permutation(n)
        if world > 1:  # every rank gets the same number of batches
            order = order[: max(world, n - n % world)][rank::world]
        self.batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)][skip:]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _validate(model: FinetunedModel, val, device, cached: bool, batch_size: int, data: TrainingSet) -> dict:
    """Validation loss and primary metric; ``score`` ranks validations (the metric, or -loss where it is NaN)."""
    feats = val if cached else pooled_features(model, val, device)
    outs = []
    with torch.no_grad():
        for i in range(0, len(feats["label"]), batch_size):
            batch = {k: v[i : i + batch_size].to(device) for k, v in feats.items()}
            outs.append(model.outputs(batch["features"], batch.get("tissue")).float().cpu())
    out = torch.cat(outs)
    loss = float(_loss(data.binary, out, feats["label"]))
    scores = torch.sigmoid(out) if data.binary else out
    metric = macro(data.metric, feats["label"].numpy(), scores.numpy())
    return {"loss": loss, data.metric: metric, "score": metric if not math.isnan(metric) else -loss}


def fine_tune(options: TrainOptions, prepare: Callable[[], TrainingSet]) -> dict:
    """Fine-tune ``options.model`` on the windows that ``prepare`` returns (called once the process group is joined)
    and save the best model in ``options.output``; returns a summary. Under ``torchrun`` every process calls this
    (DDP)."""
    from lrgen.runtime.distributed import processes

    out = Path(options.output)
    state_path = out / STATE_FILE
    if not options.resume and (state_path.exists() or (out / TASK_FILE).exists()):
        raise LrgenError(f"{out} already holds a fine-tuning run: pass --resume to continue it or choose another "
                         "-o/--output")
    if options.resume and not out.is_dir():
        raise LrgenError(f"--resume: {out} not found; drop --resume to start a run")
    with processes(options.device) as procs:
        return _finetune(options, prepare, out, state_path, procs)


def _finetune(cfg: TrainOptions, prepare: Callable[[], TrainingSet], out: Path, state_path: Path, info) -> dict:
    from lrgen.models.resolve import resolve_model
    from lrgen.runtime.distributed import wrap_ddp
    from lrgen.runtime.progress import progress_bar

    device = info.device
    progress = None
    try:
        torch.manual_seed(cfg.seed)
        data = prepare()
        train_w, val_w, tissues = data.train, data.valid, data.tissues
        if len(train_w.records) < info.world_size:
            raise LrgenError(f"{data.source}: {len(train_w.records)} usable training windows for {info.world_size} "
                             f"processes ({train_w.counts})")

        resolved = resolve_model(cfg.model)
        backbone = resolved.model
        model = FinetunedModel(backbone, data.spec(backbone)).to(device)
        tokenizer = backbone.tokenizer  # a published backbone's own vocabulary
        if cfg.freeze_backbone:
            backbone.requires_grad_(False)
        if cfg.compile:
            compile_position_wise(backbone)

        if info.is_main:
            progress = progress_bar()
            progress.start()
        cached = cfg.freeze_backbone
        if cached:
            train_data = pooled_features(model, loader(train_w, tokenizer, cfg.batch_size, tissues), device,
                                         progress=progress)
            val_data = (pooled_features(model, loader(val_w, tokenizer, cfg.batch_size, tissues), device,
                                        progress=progress)
                        if val_w and val_w.records else None)
        else:
            train_data = None
            val_data = loader(val_w, tokenizer, cfg.batch_size, tissues) if val_w and val_w.records else None

        groups = [{"params": list(model.head.parameters()), "lr": cfg.head_lr}]
        if not cfg.freeze_backbone:
            groups.append({"params": [p for p in backbone.parameters() if p.requires_grad], "lr": cfg.lr})
        optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        per_epoch = len(_Batches(len(train_w.records), cfg.batch_size, cfg.seed, 0, info.rank, info.world_size))
        total = cfg.max_steps or cfg.epochs * per_epoch
        warmup = cfg.warmup_steps if cfg.warmup_steps is not None else default_warmup(total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, warmup, 0.1))
        trainable = model.head if cfg.freeze_backbone else model
        ddp = wrap_ddp(trainable, info)

        run = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": -math.inf, "bad": 0, "history": [], "done": False}
        if cfg.resume and state_path.exists():  # else the run stopped before its first state: it starts over
            saved = _load_state(state_path)
            if saved["config"]["task"] != cfg.task or saved["config"]["context"] != cfg.context:
                raise LrgenError(f"{state_path}: saved run is {saved['config']['task']} at {saved['config']['context']} bp")
            trainable.load_state_dict(saved["trainable"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            run = saved["run"]
            run["done"] = run["bad"] >= cfg.patience or run["step"] >= total  # a longer budget continues the run

        counts = {"train": train_w.counts, "validation": val_w.counts if val_w else {"rows": 0, "kept": 0}}
        extra = {"task": data.name, "metric": data.metric, "backbone": resolved.description, "counts": counts,
                 **data.extra}

        def save_state() -> None:
            _save_state({"config": asdict(cfg), "trainable": trainable.state_dict(),
                                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                "run": run}, state_path)

        def validate_and_save() -> None:
            """Validate (rank 0), keep the best model, write the state; sets ``run["done"]`` on every rank."""
            if info.is_main:
                if val_data is None:
                    result = {"score": float(run["step"])}  # no validation split: keep the latest model
                else:
                    result = _validate(model, val_data, device, cached, 256, data)
                model.train(not cfg.freeze_backbone)
                result["step"] = run["step"]
                run["history"].append(result)
                if result["score"] > run["best"]:
                    run["best"], run["bad"] = result["score"], 0
                    save_finetuned(model, out, {**extra, "training": {"step": run["step"], "validation": result}})
                else:
                    run["bad"] += 1
                run["done"] = run["bad"] >= cfg.patience or run["step"] >= total
                save_state()
            run["done"] = info.broadcast(run["done"])

        out.mkdir(parents=True, exist_ok=True)
        start = time.time()
        task_id = progress.add_task("finetune", total=total, completed=run["step"], info="") if progress else None
        model.train(not cfg.freeze_backbone)
        while not run["done"]:
            batches = _Batches(len(train_w.records), cfg.batch_size, cfg.seed, run["epoch"], info.rank,
                               info.world_size, run["batch_in_epoch"])
            if cached:
                source = ({k: v[idx] for k, v in train_data.items()} for idx in batches)
            else:
                source = loader(train_w, tokenizer, cfg.batch_size, tissues, batch_sampler=batches,
                                num_workers=cfg.num_workers)
            for batch in source:
                batch = to_device(batch, device)
                with autocast(device):
                    if cached:
                        prediction = ddp(batch["features"], batch.get("tissue"))
                    else:
                        prediction = ddp(*batch_inputs(batch), batch["context"], batch.get("tissue"))
                    loss = _loss(data.binary, prediction, batch["label"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                run["step"] += 1
                run["batch_in_epoch"] += 1
                if progress is not None:
                    progress.update(task_id, advance=1, info=f"epoch {run['epoch'] + 1} loss {float(loss.detach()):.4f}")
                if (cfg.eval_every and run["step"] % cfg.eval_every == 0) or run["step"] >= total:
                    validate_and_save()
                    if run["done"]:
                        break
            else:
                run["epoch"] += 1
                run["batch_in_epoch"] = 0
                if not cfg.eval_every:
                    validate_and_save()
        summary = {
            "task": data.name,
            "output": str(out),
            "steps": run["step"],
            "best_validation": run["best"],
            "metric": data.metric,
            "history": run["history"],
            "counts": counts,
            "seconds": round(time.time() - start, 1),
            "world_size": info.world_size,
        }
        if info.is_main:
            meta = json.loads((out / TASK_FILE).read_text())
            meta["summary"] = {k: summary[k] for k in ("steps", "history", "seconds", "world_size")}
            atomic_write_text(out / TASK_FILE, json.dumps(meta, indent=2) + "\n")
        return summary
    finally:
        if progress is not None:
            progress.stop()
