"""One parser for lengths given by users (``12000``, ``131kb``, ``1Mbp``, ``1M``, ``1.5kb``) and one for wall-clock
durations (``540``, ``90s``, ``8m``, ``1h30m``)."""

from __future__ import annotations

import re

from lrgen.errors import LrgenError

_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:bp|b)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Parse a length in base pairs; decimal units (``1kb`` = 1,000 bp, ``1Mbp`` = 1,000,000 bp).

    ``1Mi``-style binary units are accepted too (``1Mi`` = 1,048,576), since model contexts are often powers of two.
    """
    if isinstance(text, int):
        value = text
    else:
        s = str(text).strip()
        binary = re.match(r"^\s*(\d+)\s*([kmg])i(?:bp|b)?\s*$", s, re.IGNORECASE)
        if binary:
            value = int(binary.group(1)) * 1024 ** "kmg".index(binary.group(2).lower()) * 1024
        else:
            m = _PATTERN.match(s)
            if not m:
                raise LrgenError(f"cannot read length {text!r}: write e.g. 12000, 131kb, 1Mbp, 1M or 1Mi")
            number = float(m.group(1)) * _UNITS[m.group(2).lower()]
            if number != int(number):
                raise LrgenError(f"length {text!r} is not a whole number of base pairs")
            value = int(number)
    if value <= 0:
        raise LrgenError(f"length {text!r} must be positive")
    return value


def parse_size_list(text: str) -> list[int]:
    """Parse a comma-separated list of lengths, e.g. ``12kb,120kb,1Mbp``."""
    parts = [p for p in str(text).split(",") if p.strip()]
    if not parts:
        raise LrgenError(f"no length in {text!r}")
    return [parse_size(p) for p in parts]


def format_size(n: int) -> str:
    """Short human form: 1000000 -> '1Mbp', 131072 -> '131.1kbp', 500 -> '500bp'."""
    for unit, scale in (("Gbp", 10**9), ("Mbp", 10**6), ("kbp", 10**3)):
        if n >= scale:
            v = n / scale
            return f"{v:.0f}{unit}" if v == int(v) else f"{v:.1f}{unit}"
    return f"{n}bp"


_DURATION_TERM = re.compile(r"(\d+(?:\.\d+)?)\s*([hms])", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[hms]\s*)+$", re.IGNORECASE)
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str | float) -> float:
    """Parse a wall-clock duration into seconds: a number of seconds (``540``, ``2.5``) or terms with units ``h``,
    ``m``, ``s`` (``90s``, ``8m``, ``1h30m``, ``1m 30s``)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    elif re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", str(text)):
        value = float(text)
    elif _DURATION.match(str(text)):
        value = sum(float(n) * _SECONDS[u.lower()] for n, u in _DURATION_TERM.findall(str(text)))
    else:
        raise LrgenError(f"cannot read duration {text!r}: write seconds (540) or e.g. 90s, 8m, 1h30m")
    if not value > 0:
        raise LrgenError(f"duration {text!r} must be positive")
    return value
