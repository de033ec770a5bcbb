import pytest

from lrgen.errors import LrgenError
from lrgen.sizes import format_size, parse_duration, parse_size, parse_size_list


@pytest.mark.parametrize(
    "text,expected",
    [
        ("12000", 12_000),
        ("131kb", 131_000),
        ("131kbp", 131_000),
        ("1Mbp", 1_000_000),
        ("1M", 1_000_000),
        ("1m", 1_000_000),
        ("1.5kb", 1_500),
        ("12k", 12_000),
        ("1Mi", 1_048_576),
        ("128Ki", 131_072),
        (" 2 kb ", 2_000),
        (500, 500),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1.00001kb", "-5", "0", "12 parsecs", "1Tbp"])
def test_parse_size_rejects(text):
    with pytest.raises(LrgenError):
        parse_size(text)


def test_parse_size_list():
    assert parse_size_list("12kb,120kb,1Mbp") == [12_000, 120_000, 1_000_000]
    with pytest.raises(LrgenError):
        parse_size_list(",")


def test_format_size():
    assert format_size(1_000_000) == "1Mbp"
    assert format_size(131_072) == "131.1kbp"
    assert format_size(500) == "500bp"


@pytest.mark.parametrize("text,seconds", [("540", 540), ("2.5", 2.5), ("90s", 90), ("8m", 480), ("1h30m", 5400),
                                          ("1m 30s", 90), ("1.5h", 5400), (7, 7)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "8x", "-5", "0", "0s", "1m30", "m"])
def test_parse_duration_rejects(text):
    with pytest.raises(LrgenError):
        parse_duration(text)
