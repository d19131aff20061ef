"""Rules list the package files they run; the list must follow imports, and planning is in none."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from taxvlm.sources import module_sources, script_sources

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
# Modules the rules import that jobs import too, and why each is not planning.
SHARED_WITH_JOBS = {
    "grid": "the words planning and jobs share (the config error, objectives, scheduling keys)",
    "analysis.names": "figure and table names: the rules declare the files the figures job writes",
    "provenance": "the config fingerprint the provenance job records",
    "tune": "the tuning plan's names, which the tuning summary job reads back",
    "assets.lock": "the asset lock the fetch job records unpinned downloads in",
}


def names(paths: list[str]) -> set[str]:
    return {str(Path(p).relative_to(SRC / "taxvlm")) for p in paths}


def test_follows_imports_transitively() -> None:
    files = names(module_sources(SRC, ["training.loop"]))
    assert {"training/loop.py", "training/__init__.py", "features.py", "models/lms.py", "io.py", "seeding.py"} <= files
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
    script.write_text("import logging\nfrom taxvlm.evaluation.readouts import evaluate_projector\n")
    files = names(script_sources(SRC, script))
    assert {"evaluation/readouts.py", "features.py", "models/projector.py"} <= files
    assert "train.py" not in files


def modules_the_rules_import() -> set[str]:
    rules = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
    text = "\n".join(path.read_text() for path in rules)
    return set(re.findall(r"^from taxvlm\.([\w.]+) import", text, re.M))


def test_no_job_imports_planning_so_editing_planning_reruns_no_job() -> None:
    """Rules take their script's imports as inputs, so a planning module in a job's imports would make
    a planning edit (the fused groups, a config warning) rerun features and training."""
    planning = modules_the_rules_import() - set(SHARED_WITH_JOBS)
    assert {"config", "presets", "placement", "sources", "probing.selection", "settings.tree"} <= planning
    planning_files = {module.replace(".", "/") + ".py" for module in planning}
    for script in sorted((REPO / "workflow/scripts").glob("*.py")):
        imported = names(script_sources(SRC, script)) & planning_files
        assert not imported, f"{script.name} imports planning modules {sorted(imported)} (share through taxvlm.grid)"


def test_a_job_depends_only_on_the_settings_sections_it_reads() -> None:
    """Jobs type their params with the tree's sections; the tree is one module per section, so editing
    a section (its meanings included) reruns only the jobs that read it."""
    base = {"settings/__init__.py", "settings/base.py", "settings/models.py"}
    assert _settings_read_by("extract_features.py") == base
    # training reads the data tables' words too (taxvlm.data), so the dataset section comes with them
    assert _settings_read_by("train_projector.py") == base | {"settings/training.py", "settings/dataset.py"}
    for script in sorted((REPO / "workflow/scripts").glob("*.py")):
        if not script.name.startswith("compositional_"):
            assert "settings/compositional.py" not in _settings_read_by(script.name), script.name


def _settings_read_by(script: str) -> set[str]:
    return {f for f in names(script_sources(SRC, REPO / "workflow/scripts" / script)) if f.startswith("settings/")}


# Rules that run a script named after another rule, which owns the logic they share.
SHARED_SCRIPTS = {
    "compositional_wordnet": ("install_wordnet", "WordNet for the compositional stage, whatever the dataset kind"),
    "compositional_fetch_benchmark": ("fetch_asset", "a pinned download, as every asset's"),
    "compositional_fetch_coco": ("fetch_asset", "a pinned download, as every asset's"),
    "compositional_coco_negatives": ("compositional_negatives", "the same negatives, of COCO's captions"),
    "compositional_benchmark_vlm": ("compositional_score_vlm", "the same scoring, of a benchmark's pairs"),
    "compositional_benchmark_open_clip": ("compositional_score_open_clip", "the same scoring, of a benchmark"),
    "compositional_benchmark_faithful": ("compositional_score_open_clip", "the faithful models, scored the same way"),
    "compositional_benchmark_features": ("extract_features", "the same encoder features, of a benchmark's images"),
    "tune_candidate": ("train_projector", "a tuning candidate trains as a grid run does"),
}


def rule_scripts() -> dict[str, str]:
    """Every rule of the workflow's rule files → the script it runs (fused rules by their family name)."""
    found = {}
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        text = path.read_text()
        for match in re.finditer(r"^ *rule (\w+):\n(.*?)(?=^ *rule \w+:|\Z)", text, re.M | re.S):
            script = re.search(r'^\s*script:\s*\n\s*f?"\.\./scripts/(\w+)\.py"', match.group(2), re.M)
            if script:
                found[match.group(1)] = script.group(1)
    return found


def test_every_rule_runs_the_script_named_after_it() -> None:
    scripts = rule_scripts()
    assert len(scripts) >= 45, scripts  # the parser found the rules
    assert scripts.get("train_projector") == "train_projector"
    named_otherwise = {rule: script for rule, script in scripts.items() if script != rule}
    expected = {rule: owner for rule, (owner, _) in SHARED_SCRIPTS.items()}
    assert named_otherwise == expected, sorted(set(named_otherwise.items()) ^ set(expected.items()))
    on_disk = {path.stem for path in (REPO / "workflow/scripts").glob("*.py")}
    assert on_disk == set(scripts.values()) | {"train_fused"}, on_disk ^ (set(scripts.values()) | {"train_fused"})
