"""``lrgen evaluate`` for a model fine-tuned on user data: the metrics of each label or track on the held-out contigs
its ``task.json`` records, written to ``results.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lrgen.errors import LrgenError

if TYPE_CHECKING:
    from lrgen.io.genome import Genome
    from lrgen.userdata.examples import Example, Examples

RESULTS_FILE = "results.json"
SPLITS = ("test", "valid", "train")


def metric_names(binary: bool) -> tuple[str, ...]:
    """The metrics of a label kind, the primary one first."""
    return ("auroc", "auprc") if binary else ("pearson", "r2")


@dataclass
class UserEvaluateOptions:
    """Everything ``lrgen evaluate`` takes for a user-data model (the CLI flags carry the same names): the fine-tuned
    folder, the genome when it moved since training, a folder for ``results.json``, and the split."""

    model: str
    genome: str | None = None
    output: str | None = None
    split: str = "test"
    batch_size: int = 8
    chunk_size: int | None = None
    device: str = "auto"


@dataclass
class BuiltExamples:
    """A task's examples as fine-tuning built them (the genome, the examples, their splits by name), so that the
    test that follows it need not read the inputs again."""

    genome: Genome
    examples: Examples
    splits: dict[str, list[Example]]


def evaluate_user(options: UserEvaluateOptions, built: BuiltExamples | None = None) -> dict:
    """Metrics of ``options.model`` on its held-out contigs (``options.split``); also written to
    ``options.output/results.json`` when given. ``built``: the examples of the same task, already built."""
    from lrgen.io.genome import Genome
    from lrgen.models.finetuned import is_finetuned, load_finetuned
    from lrgen.runtime.device import resolve_device
    from lrgen.runtime.files import atomic_write_text, json_safe
    from lrgen.training.inference import loader, pooled_features, scores_from_features
    from lrgen.training.metrics import macro, per_label
    from lrgen.userdata.examples import UserTask, build_examples, split_examples
    from lrgen.userdata.windows import make_windows

    o = options
    if o.split not in SPLITS:
        raise LrgenError(f"--split {o.split!r}: a user-data model has the splits {', '.join(SPLITS)}")
    if not is_finetuned(o.model):
        raise LrgenError(f"{o.model} is not a fine-tuned folder: pass --task with a GLRB task, or a folder written by "
                         "lrgen finetune --task regions|tracks|table")
    model, meta = load_finetuned(o.model)
    if "userdata" not in meta:
        raise LrgenError(f"{o.model} was fine-tuned on the GLRB task {model.spec.task}: evaluate it with --task "
                         f"{model.spec.task} --data-dir DIR --genome FASTA")
    task = UserTask.from_dict({**meta["userdata"], **({"genome": o.genome} if o.genome else {})})
    if built is None:
        genome = Genome(task.genome)
        examples = build_examples(task, genome)
        built = BuiltExamples(genome, examples, split_examples(task, examples, genome))
    genome, examples, records = built.genome, built.examples, built.splits[o.split]
    context = model.spec.context
    n_bins = model.n_bins(context) if model.spec.pooling == "bins" else 0
    windows = make_windows(examples, records, genome, context, task.max_n_fraction, n_bins)
    if not windows.records:
        raise LrgenError(f"{o.model}: no usable {o.split} windows ({windows.counts})")
    device = resolve_device(o.device)
    model.to(device)
    features = pooled_features(model, loader(windows, model.backbone.tokenizer, o.batch_size), device,
                               o.chunk_size)
    scores = scores_from_features(model, features, device)
    labels = features["label"].numpy()
    names = metric_names(model.spec.binary)
    per = {m: per_label(m, labels, scores) for m in names}
    contigs = {"test": task.test_chroms, "valid": task.valid_chroms}.get(o.split, "every other contig")
    result = {
        "task": task.kind, "model": str(o.model), "split": o.split, "contigs": contigs, "genome": task.genome,
        "context": context, "n": len(windows.records), "counts": windows.counts, "metric": names[0],
        "metrics": {m: macro(m, labels, scores) for m in names},
        "labels": {name: {m: per[m][i] for m in names} for i, name in enumerate(model.spec.label_names)},
    }
    if o.output is not None:
        out = Path(o.output)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / RESULTS_FILE, json.dumps(json_safe(result), indent=2) + "\n")
    return result
