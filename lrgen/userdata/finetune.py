"""``lrgen finetune --task regions|tracks|table``: a backbone fine-tuned on the user's own labels with the shared loop
(:mod:`lrgen.training.loop`), validated and tested on held-out contigs; the test metrics go to ``results.json``.

Heads: ``regions`` and classification tables pool the centred region into an MLP (binary or multi-label); ``tracks``
pool each bin of the window into a linear map per track (regression on log1p targets); variant tables pool
``mean(ref) ⊕ mean(alt)`` into an MLP; regression tables of regions use a linear map.
"""

from __future__ import annotations

from dataclasses import dataclass

from lrgen.training.loop import TrainingSet, TrainOptions, fine_tune
from lrgen.userdata.evaluate import BuiltExamples, UserEvaluateOptions, evaluate_user, metric_names
from lrgen.userdata.examples import UserInputs, UserTask


@dataclass(kw_only=True)
class UserFinetuneOptions(TrainOptions, UserInputs):
    """Everything ``lrgen finetune`` takes for a user task (the CLI flags carry the same names): the loop's options,
    the genome, the task's inputs and the held-out contigs (default: see
    :func:`~lrgen.userdata.examples.split_examples`)."""

    genome: str


def finetune_user(options: UserFinetuneOptions) -> dict:
    """Fine-tune ``options.model`` on the user's task, save the best model in ``options.output`` and evaluate it on
    the test contigs (rank 0); returns the loop's summary with ``test`` results. DDP under ``torchrun``."""
    from lrgen.runtime.distributed import is_main_process

    o = options
    inputs = {name: getattr(o, name) for name in UserInputs.__dataclass_fields__}
    task = UserTask(kind=o.task, genome=o.genome, context=o.context, seed=o.seed, max_n_fraction=o.max_n_fraction,
                    **inputs)
    built: list[BuiltExamples] = []  # what the loop's preparation read, for the test after it

    def prepare() -> TrainingSet:
        data, examples = _training_set(o, task)
        built.append(examples)
        return data

    summary = fine_tune(o, prepare)
    if is_main_process():
        summary["test"] = evaluate_user(UserEvaluateOptions(model=o.output, output=o.output, batch_size=o.batch_size,
                                                            device=o.device), built[-1] if built else None)
    return summary


def _training_set(cfg: UserFinetuneOptions, task: UserTask) -> tuple[TrainingSet, BuiltExamples]:
    from lrgen.io.genome import Genome
    from lrgen.models.finetuned import make_spec
    from lrgen.userdata.examples import build_examples, split_examples
    from lrgen.userdata.windows import make_windows

    genome = Genome(task.genome)
    examples = build_examples(task, genome)
    splits = split_examples(task, examples, genome)
    bins = examples.pooling == "bins"
    n_bins = cfg.context // task.bin_size if bins else 0
    train, valid = (make_windows(examples, splits[s], genome, cfg.context, task.max_n_fraction, n_bins)
                    for s in ("train", "valid"))
    linear = not examples.binary and examples.pooling != "variant"
    shape = {"bin_bp": task.bin_size, "max_bins": n_bins} if bins else {"pool_bp": examples.pool_bp}

    def spec(backbone):
        return make_spec(backbone, task=task.kind, context=cfg.context, n_outputs=len(examples.label_names),
                         pooling=examples.pooling, binary=examples.binary, conjoin=cfg.conjoin,
                         hidden=0 if linear else cfg.hidden, label_names=examples.label_names, **shape)

    inputs = [p for p in (task.positives, task.negatives, task.regions, task.table, *task.targets) if p]
    data = TrainingSet(name=task.kind, train=train, valid=valid, spec=spec, binary=examples.binary,
                       metric=metric_names(examples.binary)[0], source=", ".join(inputs),
                       extra={"userdata": task.to_dict(), "examples": examples.counts})
    return data, BuiltExamples(genome, examples, splits)
