"""The workflow as users meet it: lint, format, planning, a tiny end-to-end run, bad config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from report_browser import chromium, read_report
from workflow_copy import copy_workflow

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=1800
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


TINY = ("--configfile", ".test/config/config.yaml", "--cores", "2")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the workflow, so runs never touch the checkout's results/."""
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


@pytest.fixture(scope="module")
def tiny_run(workdir: Path) -> Path:
    """The `.test` configuration run once (the suite's only run of it); later tests read its results."""
    snakemake(*TINY, cwd=workdir)
    return workdir


@pytest.fixture(scope="module")
def tiny_report(tiny_run: Path) -> Path:
    """`results/report.html` of that run, built as `make run` builds it."""
    snakemake(*TINY, "--report", "results/report.html", cwd=tiny_run)
    return tiny_run / "results/report.html"


def test_lint_is_clean() -> None:
    result = snakemake("--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_config_plans_the_whole_grid() -> None:
    # --forceall: the plan of a fresh clone, whatever this checkout has already produced
    result = snakemake("-n", "--forceall", "--quiet", "rules", "--cores", "2")
    plan = result.stdout + result.stderr
    for rule in ("fetch_asset", "convert_weights", "build_dataset", "extract_features",
                 "train_projector", "name_projector", "upper_bound", "contrasts", "collect_metrics"):
        assert rule in plan, f"{rule} missing from the default plan:\n{plan}"
    # caption: pretrained + twin x 3 seeds, across x 3, within x 1 = 10 runs
    assert _job_count(plan, "train_projector") == 10
    assert _job_count(plan, "name_projector") == 10  # naming reads every run
    assert _job_count(plan, "caption_decode") == 10  # captioning the caption runs
    # the yes/no route, the probes and the text probes are config/extended.yaml's
    assert "evaluate_projector" not in plan and "probe_states" not in plan and "textprobe" not in plan


def test_fused_training_plans_one_job_per_group(tmp_path: Path) -> None:
    """`.test` with `training.fuse: 3`: its 12 runs in 6 groups (pretrained yes/no: [none, random50,
    systematic1] and the three `full` shuffles; random yes/no: 3 + 1; caption: 1 + 1), no per-run job."""
    fuse = tmp_path / "fuse.yaml"
    fuse.write_text("training: {fuse: 3}\n")
    result = snakemake("-n", "--forceall", "--quiet", "rules", "--cores", "2", "--configfile", ".test/config/config.yaml",
                       str(fuse))  # fmt: skip
    plan = result.stdout + result.stderr
    groups = {line.split()[0] for line in plan.splitlines() if line.startswith("train_fused_")}
    assert len(groups) == 6 and all(_job_count(plan, group) == 1 for group in groups)
    assert "train_projector" not in plan


def _job_count(plan: str, rule: str) -> int:
    for line in plan.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == rule and fields[1].isdigit():
            return int(fields[1])
    raise AssertionError(f"no job count for {rule} in:\n{plan}")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainig: {lr: 0.1}\n", "config: Additional properties are not allowed ('trainig' was unexpected)"),
        ("training: {lr: fast}\n", "config.training.lr: 'fast' is not of type 'number'"),
        ("models: {encoders: {bad: {source: hub, layer: -2}}}\nencoders: [bad]\n",
         "config.encoders.bad.source: 'hub' is not one of"),
        ("encoders: [nope]\n", "config.encoders: unknown model id(s) ['nope']"),
        ("encoders: {dinov2_s: {layer: -1}}\n", "config.encoders: a list of model ids"),
        (
            "experiments: [{encoders: [nope], lms: [smollm2_135m], inits: [pretrained],"
            " conditions: [none], shuffles: [original], seeds: [7]}]\n",
            "config.experiments[0].encoders: 'nope' is not defined under config.encoders",
        ),
    ],
)
def test_bad_config_fails_with_one_clear_line(tmp_path: Path, override: str, message: str) -> None:
    config = tmp_path / "override.yaml"
    config.write_text(override)
    result = snakemake("-n", "--configfile", "config/config.yaml", str(config), check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_an_overlay_alone_is_named_as_not_a_preset(tmp_path: Path) -> None:
    """A preset stands alone, so an overlay given alone lacks whole sections: the one line says so."""
    result = snakemake("-n", "--configfile", "config/extended.yaml", check=False)
    assert result.returncode != 0
    assert "config: 'dataset' is a required property (a preset stands alone" in result.stdout + result.stderr


@pytest.mark.workflow
def test_tiny_config_runs_end_to_end_then_has_nothing_to_do(tiny_run: Path) -> None:
    analysis = tiny_run / "results/analysis"
    assert (analysis / "metrics.tsv").stat().st_size > 0
    assert any((analysis / "figures").glob("*.png"))
    rerun = snakemake(*TINY, "-n", cwd=tiny_run)
    assert "Nothing to be done" in rerun.stdout + rerun.stderr


@pytest.mark.workflow
def test_tune_chooses_per_target_and_writes_the_choices_as_config(tiny_run: Path) -> None:
    """`snakemake tune` on the tiny run's data: both objectives (yes/no questions and caption naming)
    as .test lists them, each judged on its validation readout, its choices as `training.overrides`."""
    snakemake("tune", *TINY, cwd=tiny_run)
    report = (tiny_run / "results/tuning/tuning.md").read_text()
    assert "## yesno, pretrained LM, encoder `tiny_vit`" in report
    assert "## caption, random LM, encoder `tiny_vit`" in report and "leaf naming accuracy" in report
    config = yaml.safe_load(report.split("```yaml")[1].split("```")[0])
    assert [(o["objective"], o["init"]) for o in config["training"]["overrides"]] == [
        ("yesno", "pretrained"), ("caption", "random")
    ]  # fmt: skip


@pytest.mark.workflow
def test_report_shows_every_figure_and_table_in_a_real_browser(request: pytest.FixtureRequest) -> None:
    """Every category, every result's view and description, clicked in headless Chromium: no console
    or page error, no docutils System Message, every image decodes, every table has rows."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-test.lock pins it)")
    executable = chromium()
    if executable is None:
        pytest.skip("no Chromium on PATH: `make test` installs Debian's chromium when run as root or with sudo")
    report = request.getfixturevalue("tiny_report")  # only once a browser is known to be there
    check = read_report(report, executable)
    assert not check.errors, "\n".join(check.errors)
    assert sorted(check.seen) == check.results
    kinds = {path.rsplit(".", 1)[-1] for path in check.results}
    assert {"png", "csv", "txt"} <= kinds, check.seen
