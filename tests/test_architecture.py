"""The floors of the house, checked from the code's own imports (inside functions too).

cli → jobs (siblings: pretrain, glrb, variants, tracks, embed, userdata, report) → training → engine → models → runtime →
ops, io, tokenizer.
A module imports only its own floor and those below it; jobs never import each other; no library module goes back
up through the package face (``import lrgen``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lrgen"
JOBS = {"pretrain", "glrb", "variants", "tracks", "embed", "userdata", "report"}
GROUND = {"ops", "io", "tokenizer", "sizes", "errors", "version"}
#: floor -> the floors (first component under lrgen) it may import
ALLOWED = {
    **{name: GROUND for name in GROUND},
    "runtime": GROUND | {"runtime"},
    "models": GROUND | {"runtime", "models"},
    "engine": GROUND | {"runtime", "models", "engine"},
    "training": GROUND | {"runtime", "models", "engine", "training"},
    **{job: GROUND | {"runtime", "models", "engine", "training", job} for job in JOBS},
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _floor(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every lrgen module named by an import statement anywhere in the file (``lrgen`` alone for the face)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "lrgen"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "lrgen":
            if node.module == "lrgen":
                found += [(node.lineno, f"lrgen.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def test_every_module_has_a_floor():
    floors = {_floor(p) for p in _modules()} - {"__init__", "__main__", "cli", "data"}
    assert floors <= set(ALLOWED), f"modules outside any floor: {sorted(floors - set(ALLOWED))}"


@pytest.mark.parametrize("path", [p for p in _modules() if _floor(p) not in ("cli", "__main__", "__init__")],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_stay_on_their_floor_or_below(path):
    floor = _floor(path)
    bad = []
    for line, module in _imports(path):
        parts = module.split(".")
        if len(parts) == 1 or (parts[1] not in ALLOWED and parts[1] != "cli"):
            bad.append(f"line {line}: {module} (the package face)")
        elif parts[1] not in ALLOWED[floor]:
            bad.append(f"line {line}: {module}")
    assert not bad, f"{path.relative_to(PACKAGE)} ({floor}) imports above its floor: {bad}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from lrgen.glrb.tasks import get_task\n    import lrgen\n")
    assert _imports(module) == [(2, "lrgen.glrb.tasks"), (3, "lrgen")]
