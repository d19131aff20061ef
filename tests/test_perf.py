"""The benchmark's contenders must compute the same thing, or its ratios compare different work; this
also keeps `make perf` in step with the package's signatures (a renamed argument once broke it)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[1] / "perf"
sys.path.insert(0, str(PERF))

import measure  # noqa: E402
import workload  # noqa: E402


@pytest.mark.parametrize("name", sorted(path.stem for path in PERF.glob("*.py")))
def test_every_benchmark_module_imports(name: str) -> None:
    """`make perf` runs these scripts: an import they lost (a moved function) fails here, not there."""
    importlib.import_module(name)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> workload.Setup:
    s, _ = workload.build_setup(quick=True, device="cpu", models=tmp_path_factory.mktemp("none"), random_weights=False)
    return s


def test_our_scorer_matches_generate_and_the_reference(setup: workload.Setup) -> None:
    result = measure.bench_eval(setup, reps=1)
    assert result["n"] == len(setup.eval_rows)
    assert result["diff_generate"] < 1e-4
    assert result["diff_reference"] < 1e-4


def test_our_training_loss_equals_the_llava_style_loss(setup: workload.Setup) -> None:
    result = measure.bench_train(setup, reps=1, batch_size=4, with_matmul=False)
    assert result["loss_ours"] == pytest.approx(result["loss_llava"], abs=1e-4)
    assert set(result["sps"]) == {"llava", "ours_rows", "ours_images"}
