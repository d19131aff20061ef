"""Which package files a workflow step runs, found by following its `taxvlm` imports.

Snakemake tracks a rule's script but not the modules it imports; rules list these files as inputs
so that editing package code reruns exactly the steps that execute it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "taxvlm"


def _module_file(root: Path, module: str) -> Path | None:
    """The file of `taxvlm.a.b` under `root` (the folder holding the package), if it is ours."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    path = root.joinpath(*parts)
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by a file, including `from taxvlm.x import y` submodules."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def script_sources(root: str | Path, script: str | Path) -> list[str]:
    """Sorted files of every `taxvlm` module a workflow script imports, directly or not."""
    imported = sorted(name for name in _imports(Path(script)) if name.split(".")[0] == PACKAGE)
    return module_sources(root, [name for name in imported if _module_file(Path(root), name)])


def module_sources(root: str | Path, modules: list[str]) -> list[str]:
    """Sorted files of `modules` (e.g. `taxvlm.training.loop`) and every `taxvlm` module they import."""
    root = Path(root)
    seen: set[Path] = set()
    pending = [f"{PACKAGE}.{m}" if not m.startswith(PACKAGE) else m for m in modules]
    while pending:
        module = pending.pop()
        parent = module.rsplit(".", 1)[0]
        for name in (module, parent):  # importing a.b.c runs a/b/__init__.py too
            path = _module_file(root, name)
            if path is not None and path not in seen:
                seen.add(path)
                pending.extend(_imports(path))
    missing = [m for m in modules if _module_file(root, m if m.startswith(PACKAGE) else f"{PACKAGE}.{m}") is None]
    if missing:
        raise FileNotFoundError(f"no package module for {missing} under {root / PACKAGE}")
    return sorted(map(str, seen))
