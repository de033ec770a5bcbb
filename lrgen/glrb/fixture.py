"""A small, valid GLRB folder in the published layout, with its own FASTA genome, for tests and offline trials.

The genome is random sequence with GC-rich motif arrays (``GGCGCC`` repeated over 120 bp) at known places and one
4 kbp run of N. Every label carries the same learnable signal: positives (promoters, enhancers, chromatin marks,
variants, expressed genes) sit on a motif array, negatives at least 1,250 bp from any; CAGE targets grow with
each 128 bp bin's motif coverage. One row per split of most tasks lies in the N run, so N-heavy skipping shows.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from lrgen.errors import LrgenError
from lrgen.glrb.data import CAGE_BIN_BP, CAGE_BINS
from lrgen.runtime.files import atomic_write_bytes

MOTIF = "GGCGCC"
ARRAY_BP = 120
CONTIGS = {"chr1": 400_000, "chr2": 400_000}
GAP = ("chr2", 150_000, 154_000)
N_HISTONES = 20
N_DNASE = 10
N_TISSUES_RNA = 218
N_CAGE_TRACKS = 50
EQTL_TISSUES = ("Whole_Blood", "Liver", "Lung", "Thyroid")
CAGE_SPLITS = {"train": 8, "valid": 2, "test": 4}


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    _atomic_write(path, buf.getvalue().encode())


class _Genome:
    """The synthetic genome: sequences, the motif-array centres and a coverage mask per contig."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.seqs: dict[str, np.ndarray] = {}
        self.masks: dict[str, np.ndarray] = {}
        self.sites: list[tuple[str, int]] = []
        motif = np.frombuffer((MOTIF * (ARRAY_BP // len(MOTIF))).encode(), dtype=np.uint8)
        for chrom, size in CONTIGS.items():
            seq = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size)].copy()
            mask = np.zeros(size, dtype=bool)
            for centre in range(3000, size - 3000, 2500):
                c = centre + int(rng.integers(-400, 401))
                if chrom == GAP[0] and GAP[1] - 3000 < c < GAP[2] + 3000:
                    continue
                seq[c - ARRAY_BP // 2 : c + ARRAY_BP // 2] = motif
                mask[c - ARRAY_BP // 2 : c + ARRAY_BP // 2] = True
                self.sites.append((chrom, c))
            if chrom == GAP[0]:
                seq[GAP[1] : GAP[2]] = ord("N")
            self.seqs[chrom], self.masks[chrom] = seq, mask

    def fasta(self) -> bytes:
        out = []
        for chrom, seq in self.seqs.items():
            out.append(f">{chrom}\n".encode())
            out.extend(seq[i : i + 60].tobytes() + b"\n" for i in range(0, len(seq), 60))
        return b"".join(out)

    def background(self, rng: np.random.Generator) -> tuple[str, int]:
        """A position at least 1,250 bp from every motif array and 2 kbp from the gap and the contig ends."""
        while True:
            chrom = str(rng.choice(list(CONTIGS)))
            c = int(rng.integers(2000, CONTIGS[chrom] - 2000))
            lo, hi = c - 1250 - ARRAY_BP, c + 1250 + ARRAY_BP
            in_gap = chrom == GAP[0] and GAP[1] - 2000 < c < GAP[2] + 2000
            if not in_gap and not self.masks[chrom][max(lo, 0) : hi].any():
                return chrom, c

    def base(self, chrom: str, pos0: int) -> str:
        return chr(self.seqs[chrom][pos0])


def _examples(genome: _Genome, rng: np.random.Generator, n: int) -> list[tuple[str, int, int]]:
    """``n`` (chrom, 0-based centre, label) triples, half on motif arrays, shuffled."""
    picks = rng.choice(len(genome.sites), size=n // 2, replace=False)
    out = [(*genome.sites[i], 1) for i in picks]
    out += [(*genome.background(rng), 0) for _ in range(n - n // 2)]
    return [out[i] for i in rng.permutation(len(out))]


def _gap_row() -> tuple[str, int, int]:
    return GAP[0], (GAP[1] + GAP[2]) // 2, 0


def _split_rows(genome: _Genome, rng: np.random.Generator, n_train: int, n_test: int, test_only: bool = False):
    """``(split, chrom, centre, label)`` for both splits, each with one row in the N run."""
    splits = {"test": n_test} if test_only else {"train": n_train, "test": n_test}
    return [
        (split, *ex) for split, n in splits.items() for ex in [*_examples(genome, rng, n), _gap_row()]
    ]


def _alt(genome: _Genome, rng: np.random.Generator, chrom: str, pos0: int) -> str:
    ref = genome.base(chrom, pos0)
    return str(rng.choice([b for b in "ACGT" if b != ref]))


def _noisy(rng: np.random.Generator, label: int, width: int, flip: float = 0.05) -> list[int]:
    return [int(label ^ (rng.random() < flip)) for _ in range(width)]


def make_fixture(
    out_dir: str | os.PathLike,
    genome: str | os.PathLike | None = None,
    n_train: int = 48,
    n_test: int = 24,
    seed: int = 0,
) -> dict:
    """Write the benchmark folder ``out_dir`` and its FASTA (``genome``, default ``out_dir/genome.fa``).

    Returns the paths written. Both hg38 and hg19 tasks use the one synthetic genome.
    """
    if n_train < 4 or n_test < 4:
        raise LrgenError("make-fixture needs at least 4 train and 4 test rows per task")
    out = Path(out_dir)
    fasta = Path(genome) if genome is not None else out / "genome.fa"
    rng = np.random.default_rng(seed)
    g = _Genome(rng)
    _atomic_write(fasta, g.fasta())
    import pysam

    pysam.faidx(str(fasta))
    written = [fasta]

    def write(rel: str, header: list[str], rows: list[list]) -> None:
        _write_csv(out / rel, header, rows)
        written.append(out / rel)

    # variant tasks: the variant sits on a motif array (label 1) or far from any (label 0)
    eqtl = []
    for split, chrom, c, label in _split_rows(g, rng, n_train, n_test):
        distance = int(rng.choice([rng.integers(0, 30_000), rng.integers(30_000, 100_000), rng.integers(100_000, 400_000)]))
        eqtl.append([chrom, c + 1, _alt(g, rng, chrom, c), label, str(rng.choice(EQTL_TISSUES)), distance, split])
    write("variant_effect_causal_eqtl/All_Tissues.csv",
          ["CHROM", "POS", "ALT", "label", "tissue", "distance_to_nearest_TSS", "split"], eqtl)
    for rel, test_only in (("vep_pathogenic_coding.csv", False), ("vep_pathogenic_non_coding.csv", True)):
        rows = [[chrom, c + 1, _alt(g, rng, chrom, c), label, split]
                for split, chrom, c, label in _split_rows(g, rng, n_train, n_test, test_only)]
        write(f"variant_effect_pathogenic/{rel}", ["CHROM", "POS", "ALT", "INT_LABEL", "split"], rows)

    # regulatory elements: a 200 bp element centred on the position
    for name in ("promoter", "enhancer"):
        rows = [[chrom, c - 99, c + 101, label, split] for split, chrom, c, label in _split_rows(g, rng, n_train, n_test)]
        write(f"regulatory_elements/{name}_dataset.csv", ["CHROM", "START", "STOP", "label", "split"], rows)

    # chromatin features: multilabel marks on POS-100..POS+99, each following the motif with 5% flips
    rows = [[chrom, c + 1, str(_noisy(rng, label, N_HISTONES)), str(_noisy(rng, label, N_DNASE)), split]
            for split, chrom, c, label in _split_rows(g, rng, n_train, n_test)]
    write("chromatin_features/histones_and_dnase.csv", ["CHROM", "POS", "HISTONES", "DNASE", "split"], rows)

    # bulk RNA: expression in every tissue rises with a motif array at the TSS
    genes = _split_rows(g, rng, n_train, n_test)
    weights = rng.uniform(0.5, 2.0, N_TISSUES_RNA)
    coords, values = [], []
    for i, (split, chrom, c, label) in enumerate(genes):
        coords.append([f"GENE{i:05d}", chrom, c + 1, str(rng.choice(["+", "-"])), split])
        values.append([f"{v:.4f}" for v in weights * label + rng.normal(0, 0.3, N_TISSUES_RNA)])
    write("bulk_rna_expression/gene_coordinates.csv", ["gene_id", "chrom", "CAGE_representative_TSS", "strand", "split"],
          coords)
    write("bulk_rna_expression/rna_expression_values.csv", [f"tissue_{j:03d}" for j in range(N_TISSUES_RNA)], values)

    # CAGE: 896 x 128 bp regions; log1p(target) grows with each bin's motif coverage
    span = CAGE_BINS * CAGE_BIN_BP
    track_weights = rng.uniform(1.0, 4.0, N_CAGE_TRACKS)
    rows = []
    for split, n in CAGE_SPLITS.items():
        arrays = {}
        for idx in range(n):
            chrom = str(rng.choice(list(CONTIGS)))
            while True:
                start0 = int(rng.integers(0, CONTIGS[chrom] - span))
                centre = start0 + span // 2
                if not (chrom == GAP[0] and GAP[1] - 5000 < centre < GAP[2] + 5000):
                    break
            cover = g.masks[chrom][start0 : start0 + span].reshape(CAGE_BINS, CAGE_BIN_BP).mean(1)
            log_target = np.outer(cover, track_weights) + np.abs(rng.normal(0, 0.05, (CAGE_BINS, N_CAGE_TRACKS)))
            arrays[f"target-{split}-{idx}.npy"] = np.expm1(log_target).astype(np.float32)[None]
            rows.append([chrom, start0 + 1, start0 + span + 1, "validation" if split == "valid" else split, idx])
        npz = out / f"cage_prediction/targets_subset/targets-{split}-0-{n - 1}.npz"
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        _atomic_write(npz, buf.getvalue())
        written.append(npz)
    write("cage_prediction/sequences_coordinates.csv", ["chrom", "start", "stop", "split", "npy_idx"], rows)
    return {"data_dir": str(out), "genome": str(fasta), "files": [str(p) for p in written]}
