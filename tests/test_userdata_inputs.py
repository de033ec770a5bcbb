"""User-data inputs: tables, BED classes, bigWig targets, drawn negatives, held-out contigs and the refusals, each
naming the file and line."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pytest

from lrgen.errors import LrgenError
from lrgen.io.bed import Region, RegionIndex
from lrgen.io.genome import Genome
from lrgen.userdata.examples import UserTask, build_examples, split_examples
from lrgen.userdata.inputs import CLIP, Targets, read_table, region_classes
from lrgen.userdata.negatives import draw_negatives, gc_content

SIZE = 20_000


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    """Four random contigs chr1-chr4 of 20 kbp whose GC content drifts along each contig."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("g") / "g.fa"
    records = []
    for k in range(4):
        gc = np.repeat(rng.uniform(0.25, 0.75, SIZE // 500), 500)
        strong = rng.random(SIZE) < gc
        bases = np.where(strong, rng.choice(list("GC"), SIZE), rng.choice(list("AT"), SIZE))
        records.append(f">chr{k + 1}\n{''.join(bases)}\n")
    path.write_text("".join(records))
    return Genome(path)


def _write(path, text):
    path.write_text(text)
    return path


def test_tables_of_regions_and_variants(genome, tmp_path):
    regions = read_table(_write(tmp_path / "r.tsv", "#chrom\tstart\tend\tscore\n1\t100\t300\t2.5\nchr2\t0\t50\t-1\n"),
                         genome)
    assert not regions.variant and not regions.binary and regions.label_names == ["score"]
    assert [(r.chrom, r.start, r.end) for r in regions.rows] == [("chr1", 100, 300), ("chr2", 0, 50)]
    ref = genome.fetch("chr3", 9, 11)
    alt = "".join({"A": "C", "C": "G", "G": "T", "T": "A"}[b] for b in ref)
    variants = read_table(_write(tmp_path / "v.tsv", f"chrom\tpos\tref\talt\tup\tdown\nchr3\t10\t{ref}\t{alt}\t1\t0\n"),
                          genome)
    assert variants.variant and variants.binary and variants.label_names == ["up", "down"]
    assert (variants.rows[0].start, variants.rows[0].ref, variants.rows[0].alt) == (9, ref, alt)


@pytest.mark.parametrize("text, message", [
    ("chrom\tbegin\tend\ty\n", "line 1: the header needs .* missing start"),
    ("chrom\tstart\tend\n", "line 1: no label column"),
    ("chrom\tstart\tend\ty\nchr1\t1\t5\n", "line 2: 3 fields, the header has 4"),
    ("chrom\tstart\tend\ty\nchr1\t1\t5\thigh\n", "line 2: column y: 'high' is not a number"),
    ("chrom\tstart\tend\ty\n\nchr9\t1\t5\t1\n", "line 3: contig 'chr9' is not in the FASTA"),
    ("chrom\tstart\tend\ty\nchr1\t5\t20001\t1\n", "line 2: \\[5, 20001\\) is not a region of contig 'chr1'"),
    ("chrom\tpos\tref\talt\ty\nchr1\t10\tA\tAT\t1\n", "line 2: A>AT is an indel"),
    ("chrom\tpos\tref\talt\ty\nchr1\t10\tN\tA\t1\n", "line 2: column ref: allele 'N'"),
])
def test_table_errors_name_file_and_line(genome, tmp_path, text, message):
    with pytest.raises(LrgenError, match=f"t.tsv: {message}"):
        read_table(_write(tmp_path / "t.tsv", text), genome)


def test_table_ref_must_match_the_genome(genome, tmp_path):
    wrong = "A" if genome.fetch("chr1", 9, 10) != "A" else "C"
    with pytest.raises(LrgenError, match=f"line 2: ref {wrong} differs from the genome's"):
        read_table(_write(tmp_path / "t.tsv", f"chrom\tpos\tref\talt\ty\nchr1\t10\t{wrong}\tG\t1\n"), genome)


def test_bed_names_are_classes_only_when_they_repeat():
    def regions(names):
        return [Region("chr1", 10 * i, 10 * i + 5, n, i + 1) for i, n in enumerate(names)]

    assert region_classes("p.bed", regions([None] * 6)) == []
    assert region_classes("p.bed", regions([f"peak_{i}" for i in range(6)])) == []  # ids, e.g. MACS2 peak names
    assert region_classes("p.bed", regions(["b", "a", "b", "a", "c", "c"])) == ["a", "b", "c"]
    with pytest.raises(LrgenError, match="p.bed: line 5: no name"):
        region_classes("p.bed", regions(["b", "a", "b", "a", None, "c", "c"]))


def test_drawn_negatives_match_length_and_gc_and_avoid_positives(genome):
    rng = np.random.default_rng(1)
    positives = [Region(f"chr{k}", s, s + int(rng.integers(150, 400))) for k in (1, 2, 3)
                 for s in rng.integers(0, SIZE - 500, 15).tolist()]
    drawn = draw_negatives(positives, genome, 2, 300, seed=0)
    assert drawn.short == 0 and len(drawn.regions) == 2 * len(positives)
    assert drawn.regions == draw_negatives(positives, genome, 2, 300, seed=0).regions  # seeded
    avoid = RegionIndex(positives, genome)
    for k, negative in enumerate(drawn.regions):
        positive = positives[k // 2]
        assert (negative.chrom, len(negative)) == (positive.chrom, len(positive))
        width = max(len(negative), 300)
        centre = (negative.start + negative.end) // 2
        assert not avoid.overlaps(negative.chrom, centre - width // 2, centre + width // 2 + 1)
    gc = lambda r: gc_content(genome.fetch(r.chrom, r.start, r.end))  # noqa: E731
    matched = np.mean([abs(gc(n) - gc(positives[k // 2])) for k, n in enumerate(drawn.regions)])
    shuffled = np.mean([abs(gc(n) - gc(positives[(k // 2 + 7) % len(positives)])) for k, n in enumerate(drawn.regions)])
    assert matched < shuffled / 3


def test_held_out_contigs_default_to_the_end_of_the_fasta(genome, tmp_path):
    bed = _write(tmp_path / "p.bed", "".join(f"{c}\t{s}\t{s + 200}\n" for c in ("chr1", "chr2", "chr3", "4")
                                             for s in range(1000, 9000, 1000)))
    task = UserTask(kind="regions", genome=str(genome.path), context=512, positives=str(bed))
    examples = build_examples(task, genome)
    assert examples.pooling == "centre" and examples.pool_bp == 200 and examples.label_names == ["p"]
    splits = split_examples(task, examples, genome)
    assert (task.test_chroms, task.valid_chroms) == (["chr4"], ["chr3"])
    assert {r.chrom for r in splits["train"]} == {"chr1", "chr2"}
    assert len(splits["test"]) == 16  # 8 positives, 8 negatives

    named = UserTask(kind="regions", genome=str(genome.path), context=512, positives=str(bed), test_chroms=["1"],
                     valid_chroms=["chr2"])
    split_examples(named, examples, genome)
    assert (named.test_chroms, named.valid_chroms) == (["chr1"], ["chr2"])
    for valid, test, message in ((["chr1"], ["1"], "chr1 is in both"), (["chrX"], [], "--valid-chroms: contig 'chrX'"),
                                 (["chr1", "chr2"], ["chr3", "chr4"], "no train examples left for training")):
        with pytest.raises(LrgenError, match=message):
            split_examples(UserTask(kind="regions", genome=str(genome.path), context=512, positives=str(bed),
                                    valid_chroms=valid, test_chroms=test), examples, genome)


def test_task_flags_are_checked(genome, tmp_path):
    base = dict(genome=str(genome.path), context=512)
    for kwargs, message in (({"kind": "peaks"}, "unknown user task 'peaks'"),
                            ({"kind": "regions"}, "--task regions needs --positives"),
                            ({"kind": "tracks", "targets": ["a.bw"], "positives": "p.bed"},
                             "--positives does not apply to --task tracks"),
                            ({"kind": "regions", "positives": "p.bed", "negatives_per_positive": 0},
                             "--negatives-per-positive must be at least 1")):
        with pytest.raises(LrgenError, match=message):
            UserTask(**base, **kwargs)


def _bigwig(path, contigs: dict[str, int], value: float):
    with pyBigWig.open(str(path), "w") as bw:
        bw.addHeader(list(contigs.items()))
        for name, size in contigs.items():
            bw.addEntries(name, 0, values=[value] * (size // 100), span=100, step=100)
    return path


def test_bigwig_targets_are_aliased_binned_clipped_and_checked(genome, tmp_path):
    aliased = _bigwig(tmp_path / "a.bw", {"1": SIZE, "2": 1000}, 10.0)  # 1/2 for chr1/chr2; chr2 only partly covered
    targets = Targets([str(aliased), str(_bigwig(tmp_path / "b.bw", {"chr1": SIZE}, 1000.0))], genome, 128)
    assert targets.names == ["a", "b"] and targets.contigs == {"chr1", "chr2"}
    values = targets.bins("chr1", 0, 4)
    assert values.shape == (4, 2) and np.allclose(values[:, 0], np.log1p(10.0))
    assert np.allclose(values[:, 1], np.log1p(CLIP + np.sqrt(1000.0 - CLIP)))  # soft clip above 384
    assert np.allclose(targets.bins("chr2", 896, 2)[:, 0], np.log1p([10.0 * 104 / 128, 0.0]))  # missing counts as 0

    with pytest.raises(LrgenError, match="other.bw: none of its contigs \\(scaffold_1\\) is in the genome"):
        Targets([str(_bigwig(tmp_path / "other.bw", {"scaffold_1": 5000}, 1.0))], genome, 128)
    negative = Targets([str(_bigwig(tmp_path / "n.bw", {"chr1": SIZE}, -2.0))], genome, 128)
    with pytest.raises(LrgenError, match="n.bw: negative value -2 near chr1:1"):
        negative.bins("chr1", 0, 2)
