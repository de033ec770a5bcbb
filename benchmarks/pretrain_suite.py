"""Pretrain Caduceus-PS, Hawk and NTv2 of one size class on the same data and token budget; measure MLM perplexity
from the training length to 1 Mbp, and zero-shot singleton-vs-common AUROCs of their variant scores (issue 19).

Data: every FASTA in ``--genomes`` (one species each) plus human chr20 (``--human``, bgzip + .fai/.gzi), with
``--val-region`` (default chr20:1,000,000-4,000,000) held out of training; the held-out region is the validation
set, the sequence of the context sweep, and where the variant sites of ``--vcf`` (with .tbi) are drawn. Stages, each
recorded in the work folder when done and skipped when the suite runs again:

1. sweep: per model, throughput at each ``--sweep-batches`` size and a short run per ``--sweep-lrs`` value
   (``suite.sweep``);
2. training: one token budget for all models (``--tokens``, or what they train in ``--train-seconds`` together),
   each at its swept batch and learning rate, reverse-complement augmentation for the models that are not
   RC-equivariant (``suite.training``);
3. extrapolation: MLM perplexity per base at ``--contexts`` with bootstrap intervals (``suite.extrapolation``);
4. attention: where NTv2's attention goes at each context (mean distance, mass beyond the training window,
   entropy), trained and untrained, and how far its rotary frequencies turn in a training window
   (``suite.attention``; seconds, so before the long stage);
5. variant signal: AUROC of ``llr`` and ``wt-marginal`` at ``--variant-contexts`` for every scorable model and its
   untrained control (``suite.variant_signal``).

``--deadline SECONDS`` bounds the call's wall time: training stops cleanly at a checkpoint before it, evaluations
start only when their estimated time fits (and an alarm interrupts one that overruns), the outputs are written, and
the script exits 0 saying to continue with the same command. Without a warm work folder, ``--restore PREV_OUT``
(a previous call's ``--out``) continues from its results and returned weights: finished stages stay done, the
evaluations run from the returned bfloat16 weights, an unfinished training starts over.

GPU (one H100; the whole suite is about 20 minutes, in calls of at most 540 s)::

    python benchmarks/pretrain_suite.py --genomes DATA/genomes --human DATA/human/20.fa.gz \\
        --vcf DATA/human/chr20_1-4Mb.sites.vcf.gz --out $OUT --work-dir suite-work --deadline 540

CPU smoke run (tiny presets, tiny budget, seconds)::

    python benchmarks/pretrain_suite.py --genomes DATA/genomes --human DATA/human/20.fa.gz \\
        --vcf DATA/human/chr20_1-4Mb.sites.vcf.gz --out /tmp/suite --work-dir /tmp/suite-work --tiny --device cpu \\
        --context 120 --sweep-batches 2,4 --sweep-lrs 2e-3,4e-3 --sweep-tokens 1k --probe-steps 2 --tokens 2k \\
        --val-windows 2 --eval-points 2 --contexts 120,1.2k,12k --windows 2 --ntv2-max-context 1.2k \\
        --variant-contexts 256,2k --variant-sites 4 --recompute-span 256
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lrgen.errors import LrgenError  # noqa: E402
from lrgen.pretrain.data import parse_region  # noqa: E402
from lrgen.runtime.device import resolve_device  # noqa: E402
from lrgen.sizes import parse_duration, parse_size, parse_size_list  # noqa: E402

from suite.attention import run_attention  # noqa: E402
from suite.clock import Deadline, OutOfTime  # noqa: E402
from suite.context import Suite, heldout_fasta, log, training_data  # noqa: E402
from suite.extrapolation import run_extrapolation  # noqa: E402
from suite.family import SIZES, initial_checkpoint, unpack  # noqa: E402
from suite.report import markdown, write_outputs  # noqa: E402
from suite.state import State  # noqa: E402
from suite.sweep import run_sweep  # noqa: E402
from suite.training import token_budget, train_models  # noqa: E402
from suite.variant_signal import run_variant_signal  # noqa: E402

#: arguments that do not change what the suite computes (the rest must match a work folder's)
PER_CALL = {"genomes", "human", "vcf", "out", "work_dir", "restore", "deadline", "reserve", "device"}


def _arg(parse):
    """An argparse type from one of lrgen's parsers: its one-line error becomes argparse's usage error."""
    def convert(text: str):
        try:
            return parse(text)
        except LrgenError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = parse.__name__
    return convert


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--genomes", required=True, help="folder of microbial FASTA files (*.fa.gz), one species each")
    p.add_argument("--human", required=True, help="human chr20 FASTA, bgzip with .fai/.gzi (20.fa.gz)")
    p.add_argument("--vcf", required=True, help="variant sites on the held-out region with INFO AC and AF (+ .tbi)")
    p.add_argument("--out", required=True, help="folder for the results and returned weights (8 files at most)")
    p.add_argument("--work-dir", default="suite-work", help="folder of the runs and the state [suite-work]")
    p.add_argument("--restore", default=None, help="a previous call's --out to continue from (cold machine)")
    p.add_argument("--deadline", type=_arg(parse_duration), default=None, help="wall time of this call, e.g. 540 or 9m")
    p.add_argument("--reserve", type=float, default=20.0, help="seconds of the deadline kept for the outputs [20]")
    p.add_argument("--val-region", default="20:1000000-4000000", help="held out of training (1-based) [%(default)s]")
    p.add_argument("--models", default=",".join(SIZES), help="comma-separated [%(default)s]")
    p.add_argument("--tiny", action="store_true", help="the *-tiny presets (CPU smoke run)")
    p.add_argument("--context", type=_arg(parse_size), default=2000, help="training window [2kb]")
    p.add_argument("--tokens", type=_arg(parse_size), default=None, help="bases per model [from --train-seconds]")
    p.add_argument("--train-seconds", type=float, default=600.0, help="training time of all models together [600]")
    p.add_argument("--sweep-batches", type=_arg(parse_size_list), default=[16, 32, 64], help="batch sizes probed [16,32,64]")
    p.add_argument("--sweep-lrs", type=_floats, default=[1e-3, 2e-3, 4e-3, 8e-3], help="peak LRs tried [1e-3,2e-3,4e-3,8e-3]")
    p.add_argument("--sweep-tokens", type=_arg(parse_size), default=1_200_000, help="bases per learning-rate run [1.2M]")
    p.add_argument("--probe-steps", type=int, default=6, help="steps per throughput probe [6]")
    p.add_argument("--batch-tolerance", type=float, default=0.1, help="throughput a smaller batch may lose [0.1]")
    p.add_argument("--val-windows", type=int, default=64, help="validation windows of the runs [64]")
    p.add_argument("--eval-points", type=int, default=10, help="validations per main run [10]")
    p.add_argument("--contexts", type=_arg(parse_size_list), default=parse_size_list("2k,20k,200k,1M"),
                   help="MLM evaluation contexts [2k,20k,200k,1M]")
    p.add_argument("--windows", type=int, default=24, help="evaluation windows per context [24]")
    p.add_argument("--ntv2-max-context", type=_arg(parse_size), default=200_000, help="longest NTv2 evaluation [200kb]")
    p.add_argument("--chunk-size", type=_arg(parse_size), default=None, help="engine chunk [engine default]")
    p.add_argument("--variant-contexts", type=_arg(parse_size_list), default=parse_size_list("2k,20k,200k"),
                   help="score-vcf contexts [2k,20k,200k]")
    p.add_argument("--variant-sites", type=int, default=600, help="sites per class (singleton, common) [600]")
    p.add_argument("--recompute-span", type=_arg(parse_size), default=2048, help="score-vcf's recompute span [2kb]")
    p.add_argument("--attention-windows", type=int, default=4, help="NTv2 attention: windows per context [4]")
    p.add_argument("--attention-queries", type=int, default=256, help="NTv2 attention: query tokens per window [256]")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N [auto]")
    p.add_argument("--seed", type=int, default=0, help="initialisation, windows, masking, site sample [0]")
    args = p.parse_args(argv)
    args.models = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(args.models) - set(SIZES))
    if unknown or not args.models:
        p.error(f"unknown models {unknown}; choose from {', '.join(SIZES)}")
    if parse_region(args.val_region).end is None:
        p.error("--val-region needs chrom:start-end")
    return args


def settings(args: argparse.Namespace, species: list[str]) -> dict:
    """What the results depend on: a work folder made with other settings is refused."""
    return {**{k: v for k, v in vars(args).items() if k not in PER_CALL}, "species": species}


def restore(previous: Path, work: Path) -> dict:
    """The state of a previous call's outputs, its returned weights unpacked into ``work/models``."""
    try:
        state = json.loads((previous / "results.json").read_text())["state"]
    except (OSError, ValueError, KeyError):
        raise LrgenError(f"--restore {previous}: no readable results.json of the suite") from None
    for name in state.get("train", {}):
        packed = previous / "models" / f"{name}.safetensors"
        if packed.is_file():
            unpack(packed, work / "models" / name)
        else:
            log(f"--restore {previous}: {name} is trained but {packed} is absent: its evaluations left cannot run")
    log(f"restored from {previous}: trained {', '.join(state.get('train', {})) or 'nothing yet'}")
    return state


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        import triton

        return (f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}, "
                f"triton {triton.__version__}")
    return f"cpu, torch {torch.__version__}"


def run(args: argparse.Namespace) -> int:
    deadline = Deadline(args.deadline, args.reserve)
    work, out = Path(args.work_dir), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    device = str(resolve_device(args.device))
    restored = restore(Path(args.restore), work) if args.restore and State.read(work) is None else None
    fasta, species = training_data(args, restored or State.read(work))
    state = State.open(work, settings(args, species), restored)
    log(f"suite on {device}: {', '.join(species)}; work folder {work}")
    init = {name: initial_checkpoint(name, args.tiny, args.seed, work / "init" / name) for name in args.models}
    heldout = heldout_fasta(args.human, args.val_region, work / "heldout.fa")
    suite = Suite(args, work, out, deadline, state, fasta, heldout, init, device)
    outcome = "complete"
    try:
        with deadline.alarm():
            recipe = run_sweep(suite)
            tokens = token_budget(suite, recipe)
            train_models(suite, recipe, tokens)
            run_extrapolation(suite)
            run_attention(suite)
            run_variant_signal(suite)
    except OutOfTime:
        outcome = "deadline"
    calls = state.get("calls", default=[])
    state.put("calls", value=[*calls, {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "device": device_description(device),
                                        "seconds": deadline.elapsed(), "outcome": outcome}])
    write_outputs(suite, complete=outcome == "complete")
    if outcome == "complete":
        print(markdown(state.data))
        log(f"suite complete in this call's {deadline.elapsed():.0f} s; results in {out}")
    else:
        log(f"deadline reached after {deadline.elapsed():.0f} s; progress kept in {work}: "
            "continue with the same command")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except LrgenError as err:
        print(f"pretrain_suite: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
