"""Crash safety: a resumable job killed right after any of its durable writes (the runtime's crash hook,
``LRGEN_TEST_STOP_AFTER_WRITES``, ends the process as ``kill -9`` would) resumes with ``--resume`` to the bytes of an
uninterrupted run. Runs are forked from the test process (no interpreter start-up per run)."""

from __future__ import annotations

import json
import os
import sys
import traceback
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from lrgen.runtime import files

REPO = Path(__file__).resolve().parents[1]
FASTA = REPO / "examples" / "data" / "chr20_1-1.2Mb.fa.gz"
VCF = REPO / "examples" / "data" / "example.vcf.gz"
KILLED = 9
NEVER = 10**9


def _run(args: list[str], cwd: Path, stop: int | None = None) -> tuple[int, int]:
    """``lrgen ARGS`` in a forked child, stopped after its ``stop``-th durable write; its exit code and how many
    durable writes it made (counted only with ``stop``)."""
    count = cwd / ".writes"
    count.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            from lrgen.cli import main

            os.chdir(cwd)
            sys.argv = ["lrgen", *args]
            if stop is not None:
                os.environ[files.STOP_AFTER_WRITES] = str(stop)
                files._writes = 0
            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            count.write_text(str(files._writes))
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), int(count.read_text()) if count.exists() else -1


def _files(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


def _kill_points(total: int, few: bool = False) -> list[int]:
    """Every write of a short run; else the first ones, a few in the middle and the last ones (final assembly).
    ``few``: the first, the middle and the last."""
    if few:
        return sorted({1, total // 2, total})
    if total <= 12:
        return list(range(1, total + 1))
    middle = [total // 3, total // 2, 2 * total // 3]
    return sorted({1, 2, 3, *middle, *range(total - 5, total + 1)})


def _check_kills_resume(tmp_path: Path, args: list[str], outputs: Callable[[Path], dict[str, bytes]],
                        few: bool = False, resume: list[str] | None = None) -> None:
    """The uninterrupted run, then one killed run per kill point, each resumed (``resume``: its arguments, else
    ``args --resume``) and compared byte for byte; no partial folder is left."""
    clean = tmp_path / "clean"
    clean.mkdir()
    code, total = _run(args, clean, stop=NEVER)
    assert code == 0 and total > 3
    expected = outputs(clean)
    for k in _kill_points(total, few):
        folder = tmp_path / f"killed-{k}"
        folder.mkdir()
        code, _ = _run(args, folder, stop=k)
        assert code == KILLED, f"not stopped at write {k} of {total}"
        code, _ = _run(resume or [*args, "--resume"], folder)
        assert code == 0, f"--resume failed after a kill at write {k} of {total}"
        assert outputs(folder) == expected, f"resumed output differs after a kill at write {k} of {total}"
        assert not [p for p in folder.rglob("*") if "lrgen-partial" in p.name or p.name.startswith(".save-")], k


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_score_vcf_resumes_after_a_kill_at_any_write(tmp_path):
    (tmp_path / "r.bed").write_text("20\t1000000\t1001200\n")
    args = ["score-vcf", str(VCF), "--genome", str(FASTA), "--model", "hawk-tiny", "--context", "256",
            "--score", "wt-marginal", "--regions", str(tmp_path / "r.bed"), "--device", "cpu",
            "-o", "out.vcf.gz", "--tsv", "out.tsv"]
    _check_kills_resume(tmp_path, args, partial(_files, names=("out.vcf.gz", "out.vcf.gz.tbi", "out.tsv")))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_predict_resumes_after_a_kill_at_any_write(tmp_path):
    (tmp_path / "r.bed").write_text("20\t1000000\t1001500\n")
    args = ["predict", str(tmp_path / "r.bed"), "--genome", str(FASTA), "--model", "hawk-tiny", "--context", "512",
            "--track", "logprob", "--track", "entropy", "--device", "cpu", "-o", "out.bw"]
    _check_kills_resume(tmp_path, args, partial(_files, names=("out.logprob.bw", "out.entropy.bw")))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pretrain_resumes_after_a_kill(tmp_path):
    fasta = tmp_path / "toy.fa"
    rng = np.random.default_rng(0)
    fasta.write_text(">c0\n" + "".join(rng.choice(list("ACGT"), 4000)) + "\n")
    args = ["pretrain", "--model", "hawk-tiny", "--fasta", str(fasta), "-o", "run", "--context", "96", "--steps", "4",
            "--batch-size", "2", "--save-every", "2", "--eval-every", "2", "--val-windows", "2",
            "--val-fraction", "0.2", "--device", "cpu"]
    names = ("latest", "step-0000004/model.safetensors", "best/model.safetensors")

    def outputs(folder: Path) -> dict[str, bytes]:
        checkpoints = folder / "run" / "checkpoints"
        state = torch.load(checkpoints / "step-0000004" / "training_state.pt", weights_only=True)
        return {**_files(checkpoints, names), "training_state": _canonical(state)}

    _check_kills_resume(tmp_path, args, outputs, few=True, resume=["pretrain", "-o", "run", "--resume"])


def _canonical(value) -> bytes:
    """The contents of a training state as bytes (``torch.save`` may number equal storages differently)."""
    if isinstance(value, dict):
        return b"{" + b",".join(repr(k).encode() + b":" + _canonical(v) for k, v in value.items()) + b"}"
    if isinstance(value, (list, tuple)):
        return b"[" + b",".join(_canonical(v) for v in value) + b"]"
    if isinstance(value, torch.Tensor):
        data = value.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        return f"{value.dtype}{tuple(value.shape)}".encode() + data
    return repr(value).encode()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_finetune_resumes_after_a_kill(tmp_path):
    from lrgen.glrb.fixture import make_fixture

    bench = make_fixture(tmp_path / "data", n_train=8, n_test=4)
    args = ["finetune", "--task", "promoter", "--model", "hawk-tiny", "--data-dir", str(bench["data_dir"]),
            "--genome", str(bench["genome"]), "--context", "256", "-o", "ft", "--max-steps", "4", "--eval-every",
            "2", "--batch-size", "4", "--hidden", "16", "--device", "cpu"]

    def outputs(folder: Path) -> dict[str, bytes]:
        task = json.loads((folder / "ft" / "task.json").read_text())
        task["summary"].pop("seconds")
        return {**_files(folder / "ft", ("model.safetensors", "head.safetensors")), "task.json": json.dumps(task)}

    _check_kills_resume(tmp_path, args, outputs, few=True)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("job,damage", [
    ("score-vcf", "settings.json"), ("score-vcf", "rank0/progress.json"), ("score-vcf", "rank0/body.vcf"),
    ("predict", "rank0/done.npy"), ("predict", "values.0.npy"),
])
def test_an_unusable_partial_folder_is_one_line_naming_the_fix(tmp_path, capfd, job, damage):
    (tmp_path / "r.bed").write_text("20\t1000000\t1001000\n")
    common = ["--genome", str(FASTA), "--model", "hawk-tiny", "--device", "cpu", "--context", "256"]
    if job == "score-vcf":
        args = ["score-vcf", str(VCF), *common, "--score", "wt-marginal", "-R", "r.bed", "-o", "out.vcf"]
    else:
        args = ["predict", "r.bed", *common, "-o", "out.bw"]
    code, _ = _run(args, tmp_path, stop=4)
    assert code == KILLED
    folder = tmp_path / "out.vcf.lrgen-partial" if job == "score-vcf" else tmp_path / "out.bw.lrgen-partial"
    if damage.endswith("body.vcf"):
        (folder / damage).unlink()
    else:
        (folder / damage).write_bytes(b"\x00 not what it was")
    capfd.readouterr()
    code, _ = _run([*args, "--resume"], tmp_path)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("lrgen: error: ") and "cannot be resumed" in lines[0]
    assert f"rm -r {folder.name}" in lines[0]
    assert folder.is_dir()  # named, not silently removed
