"""GLRB loaders on a fixture in the published layout, and their errors on malformed files."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from lrgen.errors import LrgenError
from lrgen.glrb.data import cage_bins, check_context, make_windows, read_task
from lrgen.glrb.tasks import TASKS, get_task
from lrgen.io.bed import centred_window
from lrgen.io.genome import Genome
from lrgen.tokenizer import reverse_complement


def window_start(center: int, context: int) -> int:
    return centred_window(center, center + 1, context)[0]


@pytest.fixture(scope="module")
def bench(glrb_bench):
    data, genome = glrb_bench(n_train=8, n_test=6)
    return Path(data), Genome(genome)


def _write(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_aliases_and_unknown_task():
    assert get_task("histone_marks").name == "chromatin_features_histone_marks"
    assert get_task("EQTL").name == "variant_effect_causal_eqtl"
    assert get_task("regulatory-element-promoter").name == "regulatory_element_promoter"
    assert len(TASKS) == 9
    with pytest.raises(LrgenError, match="unknown GLRB task 'foo'"):
        get_task("foo")


def test_window_is_centred():
    assert window_start(100, 10) == 95  # [95, 105): centre at index 5 = L//2
    assert window_start(100, 11) == 95  # [95, 106): the odd base goes to the right


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_loads_and_skips_n_heavy_windows(bench, name):
    data, genome = bench
    task = TASKS[name]
    table = read_task(task, data)
    context = 1536 if task.pool_bp == 1536 else 1024
    expected_splits = {"test"} if task.test_only else ({"train", "valid", "test"} if task.kind == "cage" else {"train", "test"})
    assert set(table.splits) == expected_splits
    for split in table.splits:
        w = make_windows(table, table.split(split), genome, context)
        if task.kind != "cage":
            assert w.counts["n_heavy"] == 1  # the fixture's row inside the N run
        assert w.counts["kept"] == len(w.records) == w.counts["rows"] - w.counts["n_heavy"]
        labels = w.labels(w.records[0])
        shape = {
            "variant": (1,), "classification": (20,) if "HISTONES" in task.columns else (10,) if "DNASE" in task.columns else (1,),
            "bulk_rna": (218,), "cage": (cage_bins(context), 50),
        }[task.kind]
        assert labels.shape == shape
        assert len(w.sequence(w.records[0])) == context


def test_variant_alt_written_at_centre(bench):
    data, genome = bench
    table = read_task(get_task("clinvar"), data)
    for context in (1536, 1537):
        w = make_windows(table, table.split("train"), genome, context)
        rec = w.records[0]
        seq = w.sequence(rec)
        alt = w.alt_sequence(seq, rec)
        assert seq[context // 2] == genome.fetch(rec.chrom, rec.center, rec.center + 1)
        diff = [i for i in range(context) if seq[i] != alt[i]]
        assert diff == [context // 2] and alt[context // 2] == rec.alt


def test_regions_centred_and_minus_strand_reverse_complemented(bench):
    data, genome = bench
    promoters = read_task(get_task("promoter"), data)
    with open(promoters.path) as fh:
        row = next(csv.DictReader(fh))
    assert promoters.records[0].center == (int(row["START"]) - 1 + int(row["STOP"]) - 1) // 2
    bulk = read_task(get_task("bulk_rna"), data)
    w = make_windows(bulk, bulk.split("train"), genome, 1600)
    minus = next(r for r in w.records if r.minus_strand)
    start = window_start(minus.center, 1600)
    assert w.sequence(minus) == reverse_complement(genome.fetch(minus.chrom, start, start + 1600))


def test_cage_targets_cropped_to_window_and_log1p(bench):
    data, genome = bench
    table = read_task(get_task("cage"), data)
    w = make_windows(table, table.split("test"), genome, 2048)
    rec = w.records[1]
    raw = np.load(data / "cage_prediction/targets_subset/targets-test-0-3.npz")[f"target-test-{rec.npy_idx}.npy"][0]
    np.testing.assert_allclose(w.labels(rec), np.log1p(raw[440:456]), rtol=1e-6)  # 16 central bins of 896
    with pytest.raises(LrgenError, match="multiple of 256"):
        check_context(table.task, 1000)


def test_context_smaller_than_pooled_region_is_refused(bench):
    data, genome = bench
    table = read_task(get_task("eqtl"), data)
    with pytest.raises(LrgenError, match="at least 1536 bp"):
        make_windows(table, table.records, genome, 1024)


def test_missing_file_and_column_named(tmp_path, bench):
    _, genome = bench
    with pytest.raises(LrgenError, match=r"promoter_dataset\.csv not found"):
        read_task(get_task("promoter"), tmp_path)
    path = tmp_path / "regulatory_elements/promoter_dataset.csv"
    _write(path, ["CHROM", "START", "label", "split"], [["chr1", 1000, 1, "train"]])
    with pytest.raises(LrgenError, match=r"promoter_dataset\.csv: missing column STOP"):
        read_task(get_task("promoter"), tmp_path)


@pytest.mark.parametrize(
    "row, message",
    [
        (["chr1", "abc", "A", 1, "train"], r"line 2: column POS: 'abc' is not an integer"),
        (["chr1", "0", "A", 1, "train"], r"line 2: column POS: 0 is not a 1-based position"),
        (["chr1", "5000", "A", 2, "train"], r"line 2: column INT_LABEL: label '2' is not 0 or 1"),
        (["chr1", "5000", "X", 1, "train"], r"line 2: column ALT: allele 'X'"),
        (["chr1", "5000", "A", 1, "dev"], r"line 2: column split: 'dev'"),
    ],
)
def test_bad_rows_named_by_line(tmp_path, row, message):
    _write(tmp_path / "variant_effect_pathogenic/vep_pathogenic_coding.csv",
           ["CHROM", "POS", "ALT", "INT_LABEL", "split"], [row])
    with pytest.raises(LrgenError, match=message):
        read_task(get_task("clinvar"), tmp_path)


def test_unknown_contig_named_with_line(tmp_path, bench):
    _, genome = bench
    _write(tmp_path / "regulatory_elements/enhancer_dataset.csv", ["CHROM", "START", "STOP", "label", "split"],
           [["chr1", 5000, 5200, 1, "train"], ["chrUn_x", 5000, 5200, 0, "train"]])
    table = read_task(get_task("enhancer"), tmp_path)
    with pytest.raises(LrgenError, match=r"line 3: contig 'chrUn_x' is not in the genome .* hg38"):
        make_windows(table, table.records, genome, 512)


def test_ref_mismatches_counted_and_wrong_build_refused(tmp_path, bench):
    _, genome = bench
    positions = [5000 + 37 * i for i in range(6)]
    bases = [genome.fetch("chr1", p - 1, p) for p in positions]
    other = {b: next(c for c in "ACGT" if c != b) for b in "ACGT"}
    header = ["CHROM", "POS", "REF", "ALT", "INT_LABEL", "split"]
    rows = [["chr1", p, b, other[b], i % 2, "train"] for i, (p, b) in enumerate(zip(positions, bases))]
    rows[0][2] = other[bases[0]]  # REF disagrees with the genome
    rows[1][3] = bases[1]  # ALT equals the genome base
    rows[2][3] = "AC"  # not an SNV
    path = tmp_path / "variant_effect_pathogenic/vep_pathogenic_coding.csv"
    _write(path, header, rows)
    table = read_task(get_task("clinvar"), tmp_path)
    w = make_windows(table, table.records, genome, 1536)
    assert (w.counts["ref_mismatch"], w.counts["alt_equals_reference"], w.counts["not_snv"], w.counts["kept"]) == (1, 1, 1, 3)
    for r in rows[3:5]:
        r[2] = other[genome.fetch("chr1", int(r[1]) - 1, int(r[1]))]
    _write(path, header, rows)
    table = read_task(get_task("clinvar"), tmp_path)
    with pytest.raises(LrgenError, match=r"disagrees with 4 of 5 variants .* hg38 build"):
        make_windows(table, table.records, genome, 1536)


def test_bulk_rna_files_must_align_and_histone_labels_must_agree(tmp_path, bench):
    data, _ = bench
    shutil.copytree(data / "bulk_rna_expression", tmp_path / "bulk_rna_expression")
    values = tmp_path / "bulk_rna_expression/rna_expression_values.csv"
    values.write_text("\n".join(values.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(LrgenError, match="row-aligned"):
        read_task(get_task("bulk_rna"), tmp_path)
    _write(tmp_path / "chromatin_features/histones_and_dnase.csv", ["CHROM", "POS", "HISTONES", "DNASE", "split"],
           [["chr1", 5000, "[0, 1]", "[1]", "train"], ["chr1", 6000, "[0, 1, 1]", "[1]", "train"]])
    with pytest.raises(LrgenError, match="line 3: 3 labels in HISTONES, line 2 has 2"):
        read_task(get_task("histone"), tmp_path)
