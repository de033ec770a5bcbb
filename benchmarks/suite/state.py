"""The suite's record of finished stages: one JSON file in the work folder, replaced atomically after each stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lrgen.errors import LrgenError
from lrgen.runtime.files import atomic_write_text

STATE_NAME = "state.json"


class State:
    """Nested results by stage path (``("train", "hawk")``), plus the settings the work folder was made with."""

    def __init__(self, work: Path, data: dict[str, Any]) -> None:
        self.path = work / STATE_NAME
        self.data = data

    @staticmethod
    def read(work: Path) -> dict[str, Any] | None:
        """The work folder's state as saved, or None when it has none."""
        path = work / STATE_NAME
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError:
            raise LrgenError(f"{path}: damaged (not JSON); remove the work folder to start over") from None

    @classmethod
    def open(cls, work: Path, settings: dict[str, Any], restored: dict[str, Any] | None = None) -> "State":
        """The work folder's state; a fresh one (from ``restored``, a previous run's state, when given) if there is
        none. Settings that differ from the folder's are refused, naming them."""
        settings = json.loads(json.dumps(settings))
        data = cls.read(work) or restored or {"settings": settings}
        changed = sorted(k for k in {*settings, *data["settings"]} if settings.get(k) != data["settings"].get(k))
        if changed:
            raise LrgenError(f"{work} holds a suite run with other settings ({', '.join(changed)} changed): give the "
                             "same arguments, or another --work-dir")
        state = cls(work, data)
        state.save()
        return state

    def get(self, *keys: str, default: Any = None) -> Any:
        node: Any = self.data
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def put(self, *keys: str, value: Any) -> None:
        """Set the result at ``keys`` and save the state."""
        node = self.data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        self.save()

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1) + "\n")
