"""Rules list the package files they run; the list must follow imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxvlm.sources import module_sources, script_sources

SRC = Path(__file__).resolve().parents[1] / "src"


def names(paths: list[str]) -> set[str]:
    return {str(Path(p).relative_to(SRC / "taxvlm")) for p in paths}


def test_follows_imports_transitively() -> None:
    files = names(module_sources(SRC, ["train"]))
    assert {"train.py", "features.py", "models/lms.py", "io.py", "seeding.py"} <= files
    assert "analysis/figures.py" not in files


def test_leaf_module_has_only_itself_and_its_package() -> None:
    assert names(module_sources(SRC, ["seeding"])) == {"seeding.py", "__init__.py"}


def test_unknown_module_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        module_sources(SRC, ["nope"])


def test_new_import_is_picked_up(tmp_path: Path) -> None:
    package = tmp_path / "taxvlm"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from taxvlm.b import thing\n")
    (package / "b.py").write_text("thing = 1\n")
    assert names_in(tmp_path, module_sources(tmp_path, ["a"])) == {"__init__.py", "a.py", "b.py"}


def names_in(root: Path, paths: list[str]) -> set[str]:
    return {str(Path(p).relative_to(root / "taxvlm")) for p in paths}


def test_script_sources_follow_the_script_imports(tmp_path: Path) -> None:
    script = tmp_path / "step.py"
    script.write_text("import logging\nfrom taxvlm.evaluate import evaluate_projector\n")
    files = names(script_sources(SRC, script))
    assert {"evaluate.py", "features.py", "models/projector.py"} <= files
    assert "train.py" not in files
