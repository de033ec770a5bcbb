"""What every command shares: the common options (bcftools style), lengths parsed once and named by their flag,
and the old spellings of renamed flags (read for one release, with a one-line notice)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from lrgen.errors import LrgenError
from lrgen.sizes import parse_size, parse_size_list


def output_option(help: str, required: bool = True) -> Any:
    return typer.Option(... if required else None, "-o", "--output", help=help)


def genome_option(help: str = "Indexed reference FASTA (plain or bgzip).", required: bool = True) -> Any:
    return typer.Option(... if required else None, "--genome", "-g", help=help)


def model_option(help: str = "Bundled model, preset, checkpoint or fine-tuned folder, or hub id (owner/name).") -> Any:
    return typer.Option(..., "--model", "-m", help=help)


def regions_option(help: str = "BED file of regions.") -> Any:
    return typer.Option(None, "--regions", "-R", help=help)


def device_option() -> Any:
    return typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (under torchrun: each process's GPU).")


def chunk_size_option() -> Any:
    return typer.Option(None, "--chunk-size",
                        help="Positions per streamed scan chunk \\[the engine's: 65536 on a GPU, 4096 on a CPU].")


def deprecated_option(flag: str) -> Any:
    """A hidden option for an old spelling."""
    return typer.Option(None, flag, hidden=True)


def renamed(new_value: Any, old_value: Any, old: str, new: str) -> Any:
    """The value of a renamed flag: the new one, else the old one with a notice; both given is an error."""
    if old_value is None:
        return new_value
    if new_value is not None and new_value != old_value:
        raise LrgenError(f"{old} is the old spelling of {new}: give only {new}")
    print(f"lrgen: {old} is deprecated, use {new} (the old spelling goes in the next release)", file=sys.stderr)
    return old_value


def length(text: Optional[str], flag: str) -> Optional[int]:
    """A length in bp (``12kb``, ``1Mbp``, ``1Mi`` …) given to ``flag``; None stays None."""
    if text is None:
        return None
    try:
        return parse_size(text)
    except LrgenError as err:
        raise LrgenError(f"{flag}: {err}") from None


def lengths(text: Optional[str], flag: str) -> Optional[list[int]]:
    """A comma-separated list of lengths given to ``flag``."""
    if text is None:
        return None
    try:
        return parse_size_list(text)
    except LrgenError as err:
        raise LrgenError(f"{flag}: {err}") from None


def at_least_one(value: Optional[int], flag: str) -> Optional[int]:
    """A count that must be ≥ 1 (``--batch-size`` …)."""
    if value is not None and value < 1:
        raise LrgenError(f"{flag} must be at least 1, got {value}")
    return value


def bed_input(positional: Optional[Path], option: Optional[Path], required: bool = True) -> Optional[Path]:
    """The BED of a command that takes it as a positional shorthand or as ``--regions``."""
    if positional is not None and option is not None:
        raise LrgenError("give the BED file once: as the argument or as --regions")
    chosen = positional if positional is not None else option
    if chosen is None and required:
        raise LrgenError("no BED file of regions: pass --regions FILE")
    return chosen
