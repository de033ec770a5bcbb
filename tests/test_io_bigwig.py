"""Track output: bigWig round trip through pyBigWig, bedGraph text, ordering errors, no partial files."""

from __future__ import annotations

import gzip

import numpy as np
import pyBigWig
import pytest

from lrgen.errors import LrgenError
from lrgen.io.bigwig import BigWigTrack, TrackWriter

SIZES = {"20": 1000, "chrM": 100}


def read_bigwig_values(path, chrom: str, start: int, end: int) -> np.ndarray:
    with BigWigTrack(path) as track:
        return track.values(chrom, start, end)


def test_bigwig_round_trip(tmp_path):
    path = tmp_path / "track.bw"
    values = np.linspace(0.0, 1.0, 200).astype(np.float32)
    values[50:60] = np.nan
    with TrackWriter(path, SIZES) as writer:
        writer.add("20", 100, values)
        writer.add("20", 400, np.array([2.0, 3.0]), span=10)
        writer.add("chrM", 0, np.array([5.0]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["track.bw"]
    bw = pyBigWig.open(str(path))
    assert bw.chroms() == SIZES
    bw.close()
    got = read_bigwig_values(path, "20", 100, 300)
    expected = values.astype(np.float64)
    assert np.allclose(got[~np.isnan(expected)], expected[~np.isnan(expected)], atol=1e-6)
    assert np.isnan(got[50:60]).all()
    assert np.allclose(read_bigwig_values(path, "20", 400, 420), [2.0] * 10 + [3.0] * 10)
    assert np.isnan(read_bigwig_values(path, "20", 0, 100)).all()
    assert read_bigwig_values(path, "chrM", 0, 1).tolist() == [5.0]


def test_runs_of_one_value_are_one_interval_each(tmp_path):
    """A pooled track (one value per window, broadcast per base) is stored as one interval per window; a per-base
    track keeps its fixed-step entries; both read back base for base."""
    path = tmp_path / "pooled.bw"
    pooled = np.repeat([0.25, -1.0, 3.5], 100)
    pooled[150:160] = np.nan
    per_base = np.linspace(0.0, 1.0, 50)
    with TrackWriter(path, SIZES) as writer:
        writer.add("20", 0, pooled)
        writer.add("20", 500, per_base)
    bw = pyBigWig.open(str(path))
    intervals = bw.intervals("20", 0, 300)
    bw.close()
    assert [(a, b) for a, b, _ in intervals] == [(0, 100), (100, 150), (160, 200), (200, 300)]
    got = read_bigwig_values(path, "20", 0, 300)
    missing = np.isnan(pooled)
    assert np.array_equal(np.isnan(got), missing) and np.allclose(got[~missing], pooled[~missing])
    assert np.allclose(read_bigwig_values(path, "20", 500, 550), per_base, atol=1e-6)


@pytest.mark.parametrize("name", ["track.bedGraph", "track.bedgraph.gz"])
def test_bedgraph_output(tmp_path, name):
    path = tmp_path / name
    with TrackWriter(path, SIZES, format="bedgraph") as writer:
        writer.add("20", 10, np.array([1.0, 1.0, np.nan, 2.5, 2.5, 0.125]))
        writer.add("chrM", 0, np.array([7.0, 8.0]), span=5)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        lines = fh.read().splitlines()
    assert lines == [
        "20\t10\t12\t1",
        "20\t13\t15\t2.5",
        "20\t15\t16\t0.125",
        "chrM\t0\t5\t7",
        "chrM\t5\t10\t8",
    ]


def test_unsorted_entries_are_refused(tmp_path):
    path = tmp_path / "t.bw"
    with pytest.raises(LrgenError, match="sorted"):
        with TrackWriter(path, SIZES) as writer:
            writer.add("20", 100, np.ones(10))
            writer.add("20", 105, np.ones(10))  # overlaps the previous entry
    with pytest.raises(LrgenError, match="sorted"):
        with TrackWriter(path, SIZES) as writer:
            writer.add("chrM", 0, np.ones(10))
            writer.add("20", 0, np.ones(10))  # contig before the previous one in header order
    assert list(tmp_path.iterdir()) == []


def test_bad_contig_and_range(tmp_path):
    with pytest.raises(LrgenError, match="not in the track header"):
        with TrackWriter(tmp_path / "t.bw", SIZES) as writer:
            writer.add("chr7", 0, np.ones(3))
    with pytest.raises(LrgenError, match="outside the contig"):
        with TrackWriter(tmp_path / "t.bw", SIZES) as writer:
            writer.add("chrM", 95, np.ones(10))
    with pytest.raises(LrgenError, match="unknown track format"):
        TrackWriter(tmp_path / "t.bw", SIZES, format="wig")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["bigwig", "bedgraph"])
def test_no_partial_file_after_an_exception(tmp_path, fmt):
    path = tmp_path / "t.out"
    with pytest.raises(RuntimeError, match="model crashed"):
        with TrackWriter(path, SIZES, format=fmt) as writer:
            writer.add("20", 0, np.ones(100))
            raise RuntimeError("model crashed")
    assert list(tmp_path.iterdir()) == []


def test_empty_track_and_unwritable_folder(tmp_path):
    path = tmp_path / "empty.bw"
    with TrackWriter(path, SIZES):
        pass
    assert np.isnan(read_bigwig_values(path, "20", 0, 5)).all()
    with pytest.raises(LrgenError, match="does not exist or is not writable"):
        TrackWriter(tmp_path / "absent" / "t.bw", SIZES)
    with pytest.raises(LrgenError, match="not found"):
        read_bigwig_values(tmp_path / "absent.bw", "20", 0, 5)


def _summary(path) -> tuple[int, float, float]:
    """The bigWig header's total summary: bases covered, minimum, maximum (pyBigWig's header() rounds them)."""
    import struct

    data = path.read_bytes()
    (offset,) = struct.unpack_from("<Q", data, 44)
    return struct.unpack_from("<Qdd", data, offset)


@pytest.mark.parametrize("values,expected", [
    (-np.linspace(1.0, 5.0, 100), (100, -5.0, -1.0)),  # libBigWig alone says max 2.2e-308
    (np.array([-2.0, 0.0, np.nan, -1.0]), (3, -2.0, 0.0)),
    (np.array([-0.1]), (1, float(np.float32(-0.1)), float(np.float32(-0.1)))),
])
def test_header_range_is_the_true_range(tmp_path, values, expected):
    path = tmp_path / "neg.bw"
    with TrackWriter(path, SIZES) as writer:
        writer.add("20", 0, values)
    assert _summary(path) == expected


def test_header_is_libbigwigs_own_when_its_maximum_is_right(tmp_path):
    values = np.linspace(-3.0, 2.0, 300)
    with TrackWriter(tmp_path / "ours.bw", SIZES) as writer:
        writer.add("20", 10, values, span=2)
    plain = pyBigWig.open(str(tmp_path / "plain.bw"), "w")
    plain.addHeader(list(SIZES.items()))
    plain.addEntries("20", 10, values=values, span=2, step=2)
    plain.close()
    assert (tmp_path / "ours.bw").read_bytes() == (tmp_path / "plain.bw").read_bytes()


def test_a_track_reader_travels_to_a_worker(tmp_path):
    """Pickled (a spawned DataLoader worker), a reader reopens its file and reads the same values by the genome's
    names; the file's own names stay aliased."""
    import pickle

    from lrgen.io.bigwig import TrackReader

    class Genome:
        path, contig_sizes = "genome.fa", {"chr20": 1000, "MT": 100}

    path = tmp_path / "t.bw"
    with TrackWriter(path, SIZES) as writer:
        writer.add("20", 10, np.arange(5.0))
        writer.add("chrM", 0, np.array([7.0]))
    reader = TrackReader(path, Genome())
    assert reader.contigs == {"chr20": "20", "MT": "chrM"}
    copy = pickle.loads(pickle.dumps(reader))
    assert np.allclose(copy.values("chr20", 10, 15), np.arange(5.0)) and copy.values("MT", 0, 1).tolist() == [7.0]
    assert copy.contigs == reader.contigs and np.isnan(copy.values("chr1", 0, 3)).all()
    copy.close()
    first = reader._bw
    reader._pid = -1  # as in a forked worker: the inherited handle is not used, the file is opened again
    assert np.allclose(reader.values("chr20", 10, 15), np.arange(5.0)) and reader._bw is not first
    first.close()
    reader.close()
