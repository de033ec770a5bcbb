"""Fine-tuning a backbone with a GLRB task head: AdamW, warm-up, early stopping on a validation split carved from
train (never test), bf16 autocast on GPU, resumable state, progress bars, DDP under ``torchrun``.

The output folder holds the best model so far (a fine-tuned folder, :mod:`lrgen.models.finetuned`) and
``train_state.pt``, the state to resume from (tensors only, read with ``weights_only=True``; written atomically
after every validation). With a frozen backbone the pooled features are computed once and only the head is trained.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lrgen.errors import LrgenError
from lrgen.glrb.batches import to_device
from lrgen.glrb.data import Record, TaskTable, make_windows, read_task
from lrgen.glrb.heads import task_spec
from lrgen.glrb.inference import batch_inputs, loader, pooled_features
from lrgen.glrb.metrics import macro
from lrgen.glrb.tasks import get_task
from lrgen.models.compiled import compile_position_wise
from lrgen.models.finetuned import TASK_FILE, FinetunedModel, save_finetuned
from lrgen.runtime.device import autocast
from lrgen.runtime.files import atomic_path, atomic_write_text
from lrgen.runtime.schedule import default_warmup, warmup_cosine

STATE_FILE = "train_state.pt"


@dataclass
class FinetuneOptions:
    """Everything ``lrgen finetune`` takes (the CLI flags carry the same names); ``output`` is the run folder."""

    task: str
    model: str
    data_dir: str
    genome: str
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
    val_fraction: float = 0.1  # share of train carved out for validation when the task has no validation split
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


def carve_validation(table: TaskTable, fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Train and validation records: the published validation split if any, else a share of train.

    The carve is by locus (chrom, centre), so rows of one variant in several tissues stay on one side.
    """
    train = table.split("train")
    if not train:
        raise LrgenError(f"{table.path}: no rows with split 'train'")
    published = table.split("valid")
    if published:
        return train, published
    if not 0 <= fraction < 1:
        raise LrgenError(f"val_fraction must be in [0, 1), got {fraction}")
    loci = sorted({(r.chrom, r.center) for r in train})
    rng = np.random.default_rng(seed)
    n_val = int(round(fraction * len(loci)))
    held = {loci[i] for i in rng.permutation(len(loci))[:n_val]}
    return [r for r in train if (r.chrom, r.center) not in held], [r for r in train if (r.chrom, r.center) in held]


def _loss(task, out: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    out = out.float()
    if task.binary:
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


def _validate(model: FinetunedModel, val, device, cached: bool, batch_size: int) -> dict:
    """Validation loss and primary metric; ``score`` ranks validations (the metric, or -loss where it is NaN)."""
    task = get_task(model.spec.task)
    feats = val if cached else pooled_features(model, val, device)
    outs = []
    with torch.no_grad():
        for i in range(0, len(feats["label"]), batch_size):
            batch = {k: v[i : i + batch_size].to(device) for k, v in feats.items()}
            outs.append(model.outputs(batch["features"], batch.get("tissue")).float().cpu())
    out = torch.cat(outs)
    loss = float(_loss(task, out, feats["label"]))
    scores = torch.sigmoid(out) if task.binary else out
    metric = macro(task.metric, feats["label"].numpy(), scores.numpy())
    return {"loss": loss, task.metric: metric, "score": metric if not math.isnan(metric) else -loss}


def finetune(options: FinetuneOptions) -> dict:
    """Fine-tune ``options.model`` on ``options.task`` and save the best model in ``options.output``; returns a
    summary. Under ``torchrun`` every process calls this (DDP)."""
    from lrgen.runtime.distributed import processes

    task = get_task(options.task)
    if task.test_only:
        raise LrgenError(f"{task.name} has only a test split: evaluate it zero-shot with lrgen evaluate")
    out = Path(options.output)
    state_path = out / STATE_FILE
    if not options.resume and (state_path.exists() or (out / TASK_FILE).exists()):
        raise LrgenError(f"{out} already holds a fine-tuning run: pass --resume to continue it or choose another "
                         "-o/--output")
    if options.resume and not out.is_dir():
        raise LrgenError(f"--resume: {out} not found; drop --resume to start a run")
    with processes(options.device) as procs:
        return _finetune(options, task, out, state_path, procs)


def _finetune(cfg: FinetuneOptions, task, out: Path, state_path: Path, info) -> dict:
    from lrgen.io.genome import Genome
    from lrgen.models.resolve import resolve_model
    from lrgen.runtime.distributed import wrap_ddp
    from lrgen.runtime.progress import progress_bar

    device = info.device
    progress = None
    try:
        torch.manual_seed(cfg.seed)
        table = read_task(task, cfg.data_dir)
        genome = Genome(cfg.genome)
        train_recs, val_recs = carve_validation(table, cfg.val_fraction, cfg.seed)
        train_w = make_windows(table, train_recs, genome, cfg.context, cfg.max_n_fraction)
        val_w = make_windows(table, val_recs, genome, cfg.context, cfg.max_n_fraction) if val_recs else None
        if len(train_w.records) < info.world_size:
            raise LrgenError(f"{table.path}: {len(train_w.records)} usable training windows for {info.world_size} "
                             f"processes ({train_w.counts})")

        resolved = resolve_model(cfg.model)
        backbone = resolved.model
        tissues = sorted({r.tissue for r in train_w.records}) if task.tissue else []
        n_outputs = train_w.labels(train_w.records[0]).shape[-1]
        spec = task_spec(backbone, task, cfg.context, n_outputs, hidden=cfg.hidden, tissues=tissues,
                         conjoin=cfg.conjoin, label_names=table.label_names)
        model = FinetunedModel(backbone, spec).to(device)
        kind = backbone.tokenizer_kind
        if cfg.freeze_backbone:
            backbone.requires_grad_(False)
        if cfg.compile:
            compile_position_wise(backbone)

        if info.is_main:
            progress = progress_bar()
            progress.start()
        cached = cfg.freeze_backbone
        if cached:
            train_data = pooled_features(model, loader(train_w, kind, cfg.batch_size, tissues), device, progress=progress)
            val_data = (pooled_features(model, loader(val_w, kind, cfg.batch_size, tissues), device, progress=progress)
                        if val_w and val_w.records else None)
        else:
            train_data = None
            val_data = loader(val_w, kind, cfg.batch_size, tissues) if val_w and val_w.records else None

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
        extra = {"task": task.name, "metric": task.metric, "backbone": resolved.description, "counts": counts}

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
                    result = _validate(model, val_data, device, cached, 256)
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
                source = loader(train_w, kind, cfg.batch_size, tissues, batch_sampler=batches,
                                num_workers=cfg.num_workers)
            for batch in source:
                batch = to_device(batch, device)
                with autocast(device):
                    if cached:
                        prediction = ddp(batch["features"], batch.get("tissue"))
                    else:
                        prediction = ddp(*batch_inputs(batch), batch["context"], batch.get("tissue"))
                    loss = _loss(task, prediction, batch["label"])
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
            "task": task.name,
            "output": str(out),
            "steps": run["step"],
            "best_validation": run["best"],
            "metric": task.metric,
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
