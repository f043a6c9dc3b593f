"""The package's layers import only downwards; torch lives in ``train`` alone; estimators and their
evaluation are numpy-only and never see a study. Read from the source, so a new import that breaks
the architecture fails here (docs/architecture.md draws the same map)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "transfer_influence"

LAYERS = ["errors", "progress", "data", "study", "train", "execute", "estimate", "evaluate", "analysis", "report", "pipeline", "cli"]
"""Bottom to top: a module may import its own layer and the layers below it. The package root
(``__init__.py``, the public API) counts as the top."""

ONLY = {
    "estimate": {"errors", "estimate"},
    "evaluate": {"errors", "estimate", "evaluate"},
}
"""Layers that must stay independent of everything but these (numpy-only, no study layer)."""

THIRD_PARTY_HOMES = {"torch": {"train"}, "matplotlib": {"report", "data"}}
"""Heavy libraries and the only layers allowed to import them."""


def _own_layer(relative: Path) -> str:
    return "cli" if relative.parts[0] == "__init__.py" else relative.parts[0].removesuffix(".py")


def _imports(path: Path, root: Path) -> list[tuple[str, int]]:
    """Absolute names of every module ``path`` imports (relative imports resolved), with line numbers."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    package = parts[:-1]  # a module's package; for __init__ this is the package itself
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.append((".".join(base + ([node.module] if node.module else [])), node.lineno))
            else:
                found.append((node.module or "", node.lineno))
    return found


def layering_violations(root: Path) -> list[str]:
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        own = _own_layer(relative)
        if own not in LAYERS:
            problems.append(f"{relative}: in no layer of {LAYERS}")
            continue
        for target, line in _imports(path, root):
            names = target.split(".")
            if names[0] == root.name:
                layer = "cli" if len(names) == 1 else names[1]
                if layer not in LAYERS or LAYERS.index(layer) > LAYERS.index(own):
                    problems.append(f"{relative}:{line}: {own} imports {target} from the layer above, {layer}")
                elif own in ONLY and layer not in ONLY[own]:
                    problems.append(f"{relative}:{line}: {own} may import only {sorted(ONLY[own])}, not {target}")
            elif names[0] in THIRD_PARTY_HOMES and own not in THIRD_PARTY_HOMES[names[0]]:
                problems.append(f"{relative}:{line}: {names[0]} imported outside {sorted(THIRD_PARTY_HOMES[names[0]])}")
    return problems


def test_package_imports_point_down() -> None:
    assert layering_violations(PACKAGE) == []


def test_the_check_catches_upward_study_and_torch_imports(tmp_path: Path) -> None:
    root = tmp_path / "transfer_influence"
    for folder in ("estimate", "evaluate", "analysis", "study"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("from .analysis import rankings\n")
    (root / "estimate" / "dim.py").write_text("from ..analysis.rankings import ranked\nimport torch\n")
    (root / "evaluate" / "fdr.py").write_text("from ..study.results import StudyResults\nfrom ..estimate import dim\n")
    (root / "analysis" / "rankings.py").write_text("from ..estimate.dim import x\nfrom . import other\n")
    (root / "oops.py").write_text("")
    problems = layering_violations(root)
    assert any("estimate/dim.py:1" in p and "analysis" in p for p in problems)
    assert any("estimate/dim.py:2" in p and "torch" in p for p in problems)
    assert any("evaluate/fdr.py:1" in p and "study" in p for p in problems)
    assert any("oops.py: in no layer" in p for p in problems)
    assert not any("fdr.py:2" in p or "rankings.py" in p or p.startswith("__init__") for p in problems)
