"""Every shipped config names only paths inside the clone (issue 30): a user's fresh clone has nothing
beside it (no ../shared, no absolute paths of a development machine)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*REPO.glob("config/**/*.yaml"), *REPO.glob(".test/config/*.yaml"), *REPO.glob("profiles/*/config.yaml")])
DATA_SUFFIXES = {".tsv", ".csv", ".json", ".jsonl", ".txt", ".yaml", ".yml", ".zip", ".tar", ".gz"}


def _strings(node: object, where: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{where}[{i}]")
    elif isinstance(node, str):
        yield where, node


def outside_paths(config: object) -> list[tuple[str, str]]:
    """(key, value) of every string that, read as a path, leaves the repository: absolute, home-relative,
    or climbing above the repository root with `..`. URLs are not paths."""
    bad = []
    for where, value in _strings(config):
        text = value.strip()
        if "://" in text or "\n" in text or not text:
            continue
        if text.startswith(("/", "~", "\\")) or (len(text) > 1 and text[1] == ":" and text[0].isalpha()):
            bad.append((where, value))
            continue
        depth = 0
        for part in PurePosixPath(text.replace("\\", "/")).parts:
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                bad.append((where, value))
                break
    return bad


def missing_data_files(config: object) -> list[tuple[str, str]]:
    """Data-file values (a path with a data suffix under `dataset`) that the clone does not hold."""
    missing = []
    section = config.get("dataset", {}) if isinstance(config, dict) else {}
    for where, value in _strings(section, "dataset"):
        if "/" in value and "://" not in value and PurePosixPath(value).suffix in DATA_SUFFIXES:
            if not (REPO / value).exists():
                missing.append((where, value))
    return missing


def test_shipped_configs_are_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in SHIPPED}
    assert {"config/config.yaml", "config/things.yaml", ".test/config/config.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_path_outside_the_clone(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    assert outside_paths(config) == [], f"{path.relative_to(REPO)} names paths outside the repository"
    assert missing_data_files(config) == [], f"{path.relative_to(REPO)} names data files the clone lacks"


def test_the_check_sees_escapes() -> None:
    config = {
        "dataset": {"things": {"categories": "../shared/data/thingsplus/x.tsv", "pairs": "data/../../x.tsv",
                               "ok": "data/thingsplus/../thingsplus/x.tsv"}},
        "assets": {"a": {"url": "https://example.org/../x.zip", "path": "/home/me/x.zip", "h": "~/x"}},
        "lms": {"q": {"id": "Qwen/Qwen3-0.6B"}},
    }
    assert outside_paths(config) == [
        ("dataset.things.categories", "../shared/data/thingsplus/x.tsv"),
        ("dataset.things.pairs", "data/../../x.tsv"),
        ("assets.a.path", "/home/me/x.zip"),
        ("assets.a.h", "~/x"),
    ]
    assert missing_data_files({"dataset": {"x": "data/none/here.tsv"}}) == [("dataset.x", "data/none/here.tsv")]
