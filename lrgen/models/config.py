"""Base of the per-family model configs, serialised as ``config.json``.

A family config is a dataclass deriving from :class:`ModelConfig` with a class-level ``model_type`` (the family
name, written to ``config.json`` and used by :func:`lrgen.models.registry.load_checkpoint` to pick the family). Unknown
keys in ``config.json`` are an error, except for configs with an ``extra`` field (Caduceus): there they are kept
there and written back unchanged, so the Hugging Face bookkeeping keys of official checkpoints survive a round trip.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from lrgen.errors import LrgenError

C = TypeVar("C", bound="ModelConfig")


@dataclass
class ModelConfig:
    model_type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``model_type``, the fields, then the kept extra keys."""
        out: dict[str, Any] = {"model_type": self.model_type}
        for f in fields(self):
            if f.name != "extra":
                out[f.name] = copy.deepcopy(getattr(self, f.name))
        out.update(copy.deepcopy(getattr(self, "extra", {})))
        return out

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """The config written by :meth:`to_dict` (or an official ``config.json`` for families that keep extras)."""
        data = copy.deepcopy(dict(data))
        model_type = data.pop("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise LrgenError(f"config.json has model_type {model_type!r}, expected {cls.model_type!r}")
        names = {f.name for f in fields(cls)}
        unknown = {k: data.pop(k) for k in list(data) if k not in names or k == "extra"}
        if unknown:
            if "extra" not in names:
                raise LrgenError(
                    f"{cls.model_type} config: unknown keys {sorted(unknown)}; is this a {cls.model_type} config.json?"
                )
            data["extra"] = unknown
        try:
            return cls(**data)
        except TypeError as err:
            raise LrgenError(f"{cls.model_type} config: {err}") from None
