"""Operations: a real SLURM run, the incremental-rerun contract, resumability, failures, secrets.

One local run of the tiny configuration (`.test/config/config.yaml` plus `OPS_OVERRIDE`, which adds a
second tiny LM so "only that LM's jobs" means something) is made once per module and reused:
the rerun contract is checked with dry runs against it, the SLURM run is compared with it, and
the resumability and failure tests work on copies of it.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm.cluster import (  # noqa: E402
    ACCOUNT, CPU_PARTITION, GPU_PARTITION, PARTITION, SlurmCluster, SlurmUnavailable, ensure_installed,
)
from things_fixture import overlay, paper_leaves, serving, write_archives  # noqa: E402
from workflow_copy import REPO, copy_workflow  # noqa: E402

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SECRET = "sk-test-secret-value"
RUN_TIMEOUT = 1800

# The .test grid for tiny_llama plus a second tiny LM with 2 runs (no twin), also text-probed.
OPS_OVERRIDE = """\
models:
  lms:
    tiny_llama_b:
      source: hf
      weights:
        convert: tiny_llama
        options: {hidden_size: 48, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 96, seed: 1}
      chat_template: false
lms: [tiny_llama, tiny_llama_b]
analysis:
  textprobe:
    lms: [tiny_llama, tiny_llama_b]
  # the second LM is trained without a twin, as config/things.yaml trains the paper's other LMs
  require_twin: false
experiments:
  - encoders: [tiny_vit]
    lms: [tiny_llama]
    inits: [pretrained, random]
    conditions: [none, random50, systematic1, full]
    shuffles: [original]
    seeds: [7]
  - encoders: [tiny_vit]
    lms: [tiny_llama]
    inits: [pretrained]
    conditions: [full]
    shuffles: [across, within]
    seeds: [7]
  - encoders: [tiny_vit]
    lms: [tiny_llama_b]
    inits: [pretrained]
    conditions: [none, full]
    shuffles: [original]
    seeds: [7]
"""
CONFIGS = ["--configfile", ".test/config/config.yaml", "ops.yaml"]
N_RUNS = 12  # 10 for tiny_llama, 2 for tiny_llama_b
AGGREGATION = {"collect_metrics": 1, "contrasts": 1, "collect_dynamics": 1, "mixed_effects": 1, "coherence": 1,
               "figures": 1, "tables": 1, "probe_fit": 1, "all": 1}
# a changed config changes its fingerprint, which provenance.json records
CONFIG_CHANGED = {"provenance": 1}
# .test probes random50 and full under the original and across shuffles: 5 tiny_llama runs + tiny_llama_b's full
N_PROBED = 6
# yes/no, naming by likelihood, and the probe's hidden states
PER_RUN_EVALUATION = {"evaluate_projector": N_RUNS, "name_projector": N_RUNS, "probe_states": N_PROBED}
TRAIN_TARGET = "results/runs/tiny_vit/tiny_llama/pretrained/none/original/yesno/seed7/projector.pt"
# Two runs of the THINGS-format fixture (tests/things_fixture.py) under config/things.yaml: the paper
# grid's own data path, its pretrained run and its twin, with both readouts
SLURM_TARGETS = (
    "results/runs/tiny_vit/tiny_llama/pretrained/full/original/yesno/seed7/predictions.tsv",
    "results/runs/tiny_vit/tiny_llama/pretrained/full/original/yesno/seed7/naming.tsv",
    "results/runs/tiny_vit/tiny_llama/random/full/original/yesno/seed7/predictions.tsv",
)


# ---------------------------------------------------------------------------------------- helpers
def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", **extra}


def snakemake(*args: str, cwd: Path, check: bool = True, environ: dict | None = None,
              timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=environ or env())
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-8000:]}\n{result.stderr[-8000:]}"
        )
    return result


def copy_with_override(dest: Path) -> Path:
    copy_workflow(dest)
    (dest / "ops.yaml").write_text(OPS_OVERRIDE)
    return dest


def clone_run(source: Path, dest: Path) -> Path:
    """A copy of a finished run (results, metadata, mtimes), without locks."""
    shutil.copytree(source, dest, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "locks", "incomplete"))
    return dest


def job_table(text: str) -> Counter:
    """The first 'Job stats' table of a snakemake output as {rule: count} (empty: nothing to do)."""
    if "Nothing to be done" in text:
        return Counter()
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    except StopIteration:
        raise AssertionError(f"no job table in:\n{text[-4000:]}") from None
    table = Counter()
    for line in lines[start + 3:]:
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit() or fields[0] == "total":
            break
        table[fields[0]] = int(fields[1])
    return table


def planned_jobs(text: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job block a dry run prints."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", text):
        match = re.match(r"(?:local)?rule (\w+):\n", block.lstrip("\n"))
        if not match:
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        pairs = dict(item.split("=", 1) for item in wildcards.group(1).split(", ")) if wildcards else {}
        jobs.append((match.group(1), pairs))
    return jobs


def dry_run(workdir: Path, override: str | None = None) -> tuple[Counter, list]:
    configs = list(CONFIGS)
    if override is not None:
        (workdir / "override.yaml").write_text(override)
        configs.append("override.yaml")
    result = snakemake("-n", *configs, "--cores", "2", cwd=workdir)
    text = result.stdout + result.stderr
    return job_table(text), planned_jobs(text)


def files_under(root: Path):
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


# --------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """The tiny grid run locally once, with a hub token in the environment."""
    workdir = copy_with_override(tmp_path_factory.mktemp("ops") / "base")
    start = time.monotonic()
    result = snakemake(*CONFIGS, "--cores", "2", cwd=workdir, environ=env(HF_TOKEN=SECRET))
    return workdir, result.stdout + result.stderr, time.monotonic() - start


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    try:
        install_seconds = ensure_installed()
    except SlurmUnavailable as reason:
        pytest.skip(f"SLURM cannot be installed here: {reason}")
    try:
        # Two fake GPUs (a GRES without devices) and cpu/gpu partitions: GPU requests get scheduled.
        cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), fake_gpus=2).start()
    except SlurmUnavailable as reason:
        pytest.skip(f"SLURM cannot be started here: {reason}")
    cluster.install_seconds = install_seconds
    yield cluster
    cluster.stop()


# Site values given the documented way (README, "Running the paper's grid on your cluster"): the
# environment, never an edited profile.
SLURM_SITE = {"TAXVLM_SLURM_ACCOUNT": ACCOUNT, "TAXVLM_SLURM_CPU_PARTITION": CPU_PARTITION,
              "TAXVLM_SLURM_GPU_PARTITION": GPU_PARTITION}


def submitted_jobs(output: str) -> dict[str, dict]:
    """SLURM job id -> {rule, threads, gpu} of each job Snakemake submitted (from its job blocks)."""
    blocks, current = {}, None
    for line in output.splitlines():
        match = re.match(r"^(local)?rule (\w+):", line)
        if match:
            current = {"rule": match.group(2), "local": bool(match.group(1)), "threads": 1, "gpu": 0}
            continue
        if current is None:
            continue
        field = re.match(r"^\s+(jobid|threads|resources): (.*)", line)
        if field and field.group(1) == "jobid":
            blocks[field.group(2).strip()] = current
        elif field and field.group(1) == "threads":
            current["threads"] = int(field.group(2))
        elif field and field.group(1) == "resources":
            gpu = re.search(r"\bgpu=(\d+)", field.group(2))
            current["gpu"] = int(gpu.group(1)) if gpu else 0
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output)
    return {slurm_id: blocks[job_id] for job_id, slurm_id in submitted}


# ----------------------------------------------------------------------------- the rerun contract
@pytest.mark.workflow
def test_finished_run_has_nothing_to_do(base_run) -> None:
    workdir, output, _ = base_run
    table = job_table(output)
    assert table["train_projector"] == N_RUNS and table["evaluate_projector"] == N_RUNS
    assert dry_run(workdir)[0] == Counter()


@pytest.mark.workflow
def test_changing_one_lms_learning_rate_reruns_only_that_lms_jobs(base_run) -> None:
    table, jobs = dry_run(base_run[0], "training: {by_lm: {tiny_llama_b: {lr: 0.05}}}\n")
    assert table == Counter({"train_projector": 2, "evaluate_projector": 2, "name_projector": 2, "probe_states": 1,
                             **AGGREGATION, **CONFIG_CHANGED}), table
    assert {wc["lm"] for rule, wc in jobs if "lm" in wc} == {"tiny_llama_b"}


@pytest.mark.workflow
def test_adding_a_seed_adds_only_that_seeds_jobs(base_run) -> None:
    override = OPS_OVERRIDE.split("experiments:")[1].replace("seeds: [7]\n", "seeds: [7, 8]\n")
    table, jobs = dry_run(base_run[0], "experiments:" + override)
    assert table == Counter({"train_projector": N_RUNS, **PER_RUN_EVALUATION, **AGGREGATION, **CONFIG_CHANGED}), table
    assert {wc["seed"] for rule, wc in jobs if "seed" in wc} == {"8"}


@pytest.mark.workflow
def test_changing_an_encoder_layer_reruns_its_features_and_downstream_only(base_run) -> None:
    table, _ = dry_run(base_run[0], "models: {encoders: {tiny_vit: {layer: -1}}}\n")
    assert table == Counter({"extract_features": 1, "train_projector": N_RUNS, **PER_RUN_EVALUATION,
                             **AGGREGATION, **CONFIG_CHANGED}), table


def edit_functions(module: Path, functions: tuple[str, ...]) -> None:
    """A real code edit: a statement added at the top of each named function's body."""
    lines = module.read_text().splitlines(keepends=True)
    tree = ast.parse("".join(lines))
    starts = [node.body[0] for node in ast.walk(tree)
              if isinstance(node, ast.FunctionDef) and node.name in functions]
    assert len(starts) == len(functions), f"not all of {functions} in {module}"
    for statement in sorted(starts, key=lambda s: s.lineno, reverse=True):
        lines.insert(statement.lineno - 1, " " * statement.col_offset + "_edited = True\n")
    module.write_text("".join(lines))


def plan_after_editing(workdir: Path, module: str, functions: tuple[str, ...]) -> Counter:
    """The dry run's job table with the package module edited; the file restored after (mtime too)."""
    path = workdir / "src/taxvlm" / module
    original, stat = path.read_bytes(), path.stat()
    try:
        edit_functions(path, functions)
        return dry_run(workdir)[0]
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.workflow
def test_editing_package_code_reruns_the_rules_that_use_it(base_run) -> None:
    table = plan_after_editing(base_run[0], "evaluation/readouts.py", ("evaluate_projector", "name_projector"))
    assert table == Counter({**PER_RUN_EVALUATION, **AGGREGATION}), table  # both evaluation jobs live in evaluation/readouts.py


@pytest.mark.workflow
def test_editing_planning_reruns_no_job(base_run) -> None:
    """The fused groups and a config warning are planning (taxvlm.config, imported by the Snakefile
    only): their effects reach jobs as wildcards and params, so editing their code reruns nothing."""
    assert plan_after_editing(base_run[0], "config.py", ("fused_groups", "unpinned_models")) == Counter()


@pytest.mark.workflow
def test_editing_the_scoring_code_reruns_evaluation_but_not_features(base_run) -> None:
    table = plan_after_editing(base_run[0], "evaluation/scoring.py", ("score_questions",))
    assert table["evaluate_projector"] == N_RUNS and table["name_projector"] == N_RUNS, table
    assert "extract_features" not in table and "build_dataset" not in table, table


@pytest.mark.workflow
def test_touching_files_without_changing_them_reruns_nothing(base_run) -> None:
    workdir = base_run[0]
    for name in ("src/taxvlm/training/loop.py", "src/taxvlm/io.py", ".test/data/hypernyms.tsv",
                 "results/data/pairs.tsv", "results/features/tiny_vit.pt"):
        (workdir / name).touch()
    assert dry_run(workdir)[0] == Counter()


# Fused training of tiny_llama_b's runs in groups of 2: [none, systematic1], [full] (config order).
FUSED_OVERRIDE = OPS_OVERRIDE.replace("analysis:\n", "training: {by_lm: {tiny_llama_b: {fuse: 2}}}\nanalysis:\n").replace(
    "lms: [tiny_llama_b]\n    inits: [pretrained]\n    conditions: [none, full]",
    "lms: [tiny_llama_b]\n    inits: [pretrained]\n    conditions: [none, systematic1, full]")
FUSED_RUNS = [f"results/runs/tiny_vit/tiny_llama_b/pretrained/{c}/original/yesno/seed{s}/projector.pt"
              for s in (7, 8) for c in ("none", "systematic1", "full", "random50")]


def fused_plan(workdir: Path, override: str, targets: list[str]) -> Counter:
    (workdir / "fused.yaml").write_text(override)
    result = snakemake("-n", "--configfile", ".test/config/config.yaml", "fused.yaml", "--cores", "2", *targets, cwd=workdir)
    return job_table(result.stdout + result.stderr)


@pytest.mark.workflow
def test_fused_groups_rerun_only_when_their_runs_change(base_run, tmp_path: Path) -> None:
    """`training.fuse` left at its default 1 is today's plan; with `fuse: 2` a group's job trains its
    runs as their unfused jobs did (same losses and predictions), and adding a seed, appending a
    condition or changing one condition's rows reruns only the groups with changed runs."""
    assert dry_run(base_run[0], "training: {fuse: 1}\n")[0] == Counter()
    workdir = clone_run(base_run[0], tmp_path / "fused")
    (workdir / "fused.yaml").write_text(FUSED_OVERRIDE)
    both = [FUSED_RUNS[0].replace("projector.pt", ""), FUSED_RUNS[2].replace("projector.pt", "")]  # none, full
    ran = snakemake("--configfile", ".test/config/config.yaml", "fused.yaml", "--cores", "2", *FUSED_RUNS[:3],
                    *(f"{run}predictions.tsv" for run in both), cwd=workdir)
    groups = {rule for rule in job_table(ran.stdout + ran.stderr) if rule.startswith("train_fused_")}
    assert len(groups) == 2 and "train_projector" not in job_table(ran.stdout + ran.stderr)
    assert all("peak memory" in (workdir / f"logs/train_fused/{g}.log").read_text() for g in groups)
    for run in both:  # trained unfused by the base run: the same losses and per-example predictions
        fused, alone = (pd.read_csv(root / run / "curve.tsv", sep="\t") for root in (workdir, base_run[0]))
        assert (fused["loss"] - alone["loss"]).abs().max() < 1e-5 and len(fused) == len(alone)
        fused, alone = (pd.read_csv(root / run / "predictions.tsv", sep="\t") for root in (workdir, base_run[0]))
        columns = ["row_id", "prediction", "prediction_paired", "prediction_paired_calibrated"]
        pd.testing.assert_frame_equal(fused[columns], alone[columns])
    assert fused_plan(workdir, FUSED_OVERRIDE, FUSED_RUNS[:3]) == Counter()
    seeds = fused_plan(workdir, FUSED_OVERRIDE.replace("[none, systematic1, full]\n    shuffles: [original]\n    seeds: [7]",
                                                      "[none, systematic1, full]\n    shuffles: [original]\n    seeds: [7, 8]"),
                       FUSED_RUNS[:3] + FUSED_RUNS[4:7])
    assert not groups & set(seeds) and sum(n for r, n in seeds.items() if r.startswith("train_fused_")) == 2, seeds
    appended = fused_plan(workdir, FUSED_OVERRIDE.replace("[none, systematic1, full]", "[none, systematic1, full, random50]"),
                          FUSED_RUNS[:4])
    assert sum(appended.values()) == 1 and not groups & set(appended), appended  # [full, random50]
    table = workdir / "results/conditions/systematic1/original/train.tsv"  # one condition's rows change
    table.write_text("".join(table.read_text().splitlines(keepends=True)[:-1]))
    edited = fused_plan(workdir, FUSED_OVERRIDE, FUSED_RUNS[:3])
    assert len(edited) == 1 and len(groups & set(edited)) == 1, edited  # [none, systematic1] only


# ------------------------------------------------------------------------ resumability and failure
@pytest.mark.workflow
def test_killed_training_resumes_from_its_checkpoint(base_run, tmp_path: Path) -> None:
    workdir = clone_run(base_run[0], tmp_path / "resume")
    # Long enough to be caught mid-run: checkpoints every 10 steps, a few hundred steps in all.
    (workdir / "long.yaml").write_text("training: {epochs: 40, checkpoint_every: 10}\n")
    args = [*CONFIGS, "long.yaml", "--cores", "1", TRAIN_TARGET]
    checkpoint = workdir / TRAIN_TARGET.replace("results/runs", "results/checkpoints").replace(
        "projector.pt", "checkpoint.pt")
    log = workdir / "logs/train_projector" / (TRAIN_TARGET.split("results/runs/")[1].rsplit("/", 1)[0] + ".log")

    proc = subprocess.Popen([*SNAKEMAKE, *args], cwd=workdir, env=env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpoint.exists(), f"no checkpoint appeared:\n{proc.communicate(timeout=60)[0] if proc.poll() is not None else ''}"
        assert proc.poll() is None, "training finished before it could be interrupted"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert not (workdir / TRAIN_TARGET).exists()

    # The interrupted job's outputs are not trusted: the next run plans it again.
    snakemake("--unlock", *args, cwd=workdir)
    plan = snakemake("-n", *args, cwd=workdir)
    assert job_table(plan.stdout + plan.stderr) == Counter({"train_projector": 1})
    snakemake(*args, "--rerun-incomplete", cwd=workdir)
    assert re.search(r"resum", log.read_text(), re.I), log.read_text()
    assert not checkpoint.exists()

    reference = clone_run(base_run[0], tmp_path / "reference")
    (reference / "long.yaml").write_text((workdir / "long.yaml").read_text())
    snakemake(*args, cwd=reference)
    import torch

    resumed = torch.load(workdir / TRAIN_TARGET, map_location="cpu", weights_only=False)
    uninterrupted = torch.load(reference / TRAIN_TARGET, map_location="cpu", weights_only=False)
    assert_same(resumed, uninterrupted)
    assert (workdir / TRAIN_TARGET).with_name("curve.tsv").read_text() == \
        (reference / TRAIN_TARGET).with_name("curve.tsv").read_text()



# tiny_llama_b's two runs as one fused group, long enough to be caught mid-run: checkpoints every 10
# steps, 200 steps in all (its `none` run; `full` has 80), a quarter of the unfused test's length.
LONG_FUSED_OVERRIDE = OPS_OVERRIDE.replace(
    "analysis:\n", "training: {by_lm: {tiny_llama_b: {fuse: 2, epochs: 10, checkpoint_every: 10}}}\nanalysis:\n")
LONG_FUSED_RUNS = [f"results/runs/tiny_vit/tiny_llama_b/pretrained/{c}/original/yesno/seed7/projector.pt"
                   for c in ("none", "full")]


@pytest.mark.workflow
def test_killed_fused_group_resumes_to_the_uninterrupted_groups_projectors(base_run, tmp_path: Path) -> None:
    """The `train_fused_<hash>` job killed after its members' first checkpoints: the rerun resumes
    both and ends bit-identical (projectors, loss curves) to the group run without interruption."""
    workdir = clone_run(base_run[0], tmp_path / "resume_fused")
    (workdir / "fused.yaml").write_text(LONG_FUSED_OVERRIDE)
    args = ["--configfile", ".test/config/config.yaml", "fused.yaml", "--cores", "1", *LONG_FUSED_RUNS]
    checkpoints = [workdir / run.replace("results/runs", "results/checkpoints").replace("projector.pt", "checkpoint.pt")
                   for run in LONG_FUSED_RUNS]  # fmt: skip
    proc = subprocess.Popen([*SNAKEMAKE, *args], cwd=workdir, env=env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while not all(c.exists() for c in checkpoints) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(c.exists() for c in checkpoints), \
            f"no checkpoints appeared:\n{proc.communicate(timeout=60)[0] if proc.poll() is not None else ''}"
        assert proc.poll() is None, "training finished before it could be interrupted"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert not any((workdir / run).exists() for run in LONG_FUSED_RUNS)

    snakemake("--unlock", *args, cwd=workdir)
    dry = snakemake("-n", *args, cwd=workdir)
    plan = job_table(dry.stdout + dry.stderr)
    assert len(plan) == 1 and next(iter(plan)).startswith("train_fused_") and sum(plan.values()) == 1, plan
    snakemake(*args, "--rerun-incomplete", cwd=workdir)
    log = (workdir / "logs/train_fused" / f"{next(iter(plan))}.log").read_text()
    assert len(re.findall(r"resumed from", log)) == 2, log
    assert not any(c.exists() for c in checkpoints)

    reference = clone_run(base_run[0], tmp_path / "reference_fused")
    (reference / "fused.yaml").write_text(LONG_FUSED_OVERRIDE)
    snakemake(*args, cwd=reference)
    import torch

    for run in LONG_FUSED_RUNS:
        resumed, uninterrupted = (torch.load(root / run, map_location="cpu", weights_only=False)
                                  for root in (workdir, reference))  # fmt: skip
        assert_same(resumed, uninterrupted, run)
        assert (workdir / run).with_name("curve.tsv").read_text() == (reference / run).with_name("curve.tsv").read_text()

def assert_same(a, b, where: str = "projector") -> None:
    import torch

    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.workflow
def test_failed_job_leaves_nothing_trusted_and_keep_going_finishes_the_rest(base_run, tmp_path: Path) -> None:
    workdir = clone_run(base_run[0], tmp_path / "failure")
    override = (
        "models:\n  lms:\n    broken: {source: hf, id: /nonexistent/taxvlm-missing-lm}\n"
        "lms: [tiny_llama, tiny_llama_b, broken]\n"
        "experiments:" + OPS_OVERRIDE.split("experiments:")[1]
        + "  - encoders: [tiny_vit]\n    lms: [broken]\n    inits: [pretrained]\n"
        "    conditions: [none]\n    shuffles: [original]\n    seeds: [7]\n"
        "  - encoders: [tiny_vit]\n    lms: [tiny_llama_b]\n    inits: [pretrained]\n"
        "    conditions: [none]\n    shuffles: [original]\n    seeds: [8]\n"
    )
    (workdir / "broken.yaml").write_text(override)
    args = [*CONFIGS, "broken.yaml", "--cores", "2"]
    result = snakemake(*args, "--keep-going", cwd=workdir, check=False)
    assert result.returncode != 0
    broken = workdir / "results/runs/tiny_vit/broken"
    assert not [p for p in broken.rglob("*") if p.is_file()] if broken.exists() else True
    good = workdir / "results/runs/tiny_vit/tiny_llama_b/pretrained/none/original/yesno/seed8/predictions.tsv"
    assert good.stat().st_size > 0, "--keep-going did not finish the independent jobs"
    table, jobs = dry_run(workdir, override)
    assert table["train_projector"] == 1 and table["evaluate_projector"] == 1, table
    assert {wc.get("lm") for rule, wc in jobs if rule == "train_projector"} == {"broken"}


# ----------------------------------------------------------------------------------------- secrets
@pytest.mark.workflow
def test_hub_token_is_never_written(base_run) -> None:
    workdir = base_run[0]
    leaks = [str(path.relative_to(workdir)) for path in files_under(workdir)
             if SECRET.encode() in path.read_bytes()]
    assert not leaks, f"HF_TOKEN written to: {leaks}"


# ------------------------------------------------------------------------------------------- SLURM
@pytest.mark.workflow
def test_trivial_workflow_runs_as_slurm_jobs(slurm: SlurmCluster, tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(
        'rule all:\n    input: "out/b.txt"\n\n'
        'rule a:\n    output: "out/a.txt"\n    shell: "echo $SLURM_JOB_ID > {output}"\n\n'
        'rule b:\n    input: "out/a.txt"\n    output: "out/b.txt"\n'
        '    shell: "cat {input} > {output}; echo $SLURM_JOB_ID >> {output}"\n'
    )
    result = snakemake(
        "--executor", "slurm", "--jobs", "2", "--default-resources",
        f"slurm_partition={PARTITION}", f"slurm_account={ACCOUNT}", "mem_mb=200", "runtime=5",
        "--slurm-init-seconds-before-status-checks", "2", cwd=tmp_path, environ=slurm.env(),
        timeout=600,
    )
    run_id = re.search(r"SLURM run ID: (\S+)", result.stdout + result.stderr).group(1)
    jobs = [job for job in slurm.accounting() if job["JobName"] == run_id]
    assert sorted(job["Comment"] for job in jobs) == ["rule_a", "rule_b"], jobs
    assert {(job["State"], job["Account"], job["Partition"]) for job in jobs} == {
        ("COMPLETED", ACCOUNT, PARTITION)}
    ids = (tmp_path / "out/b.txt").read_text().split()
    assert ids == sorted(job["JobIDRaw"] for job in jobs)


@pytest.fixture(scope="module")
def things_served(tmp_path_factory: pytest.TempPathFactory):
    """(base URL, archives) of the THINGS-format fixture, served for this module's tests."""
    if shutil.which("zip") is None:
        pytest.skip("building THINGS-format archives needs Info-ZIP zip")
    folder = tmp_path_factory.mktemp("things")
    archives = write_archives(paper_leaves(), folder)
    with serving(folder) as base_url:
        yield base_url, archives


def things_workdir(dest: Path, served: tuple[str, list[Path]], gpus_per_job: int) -> tuple[Path, list[str]]:
    """A workflow copy with the THINGS fixture's overlay, and the config arguments that run it."""
    workdir = copy_workflow(dest)
    (workdir / "fixture.yaml").write_text(yaml.safe_dump(overlay(*served, gpus_per_job=gpus_per_job)))
    return workdir, ["--configfile", "config/things.yaml", "fixture.yaml"]


@pytest.mark.workflow
def test_runs_on_slurm_equal_the_local_runs(slurm: SlurmCluster, things_served, tmp_path: Path) -> None:
    """The paper grid's data path (config/things.yaml on the THINGS-format fixture, tiny models): two
    runs and everything they need, through profiles/slurm exactly as shipped with the site values in
    the environment, on a cluster with a `cpu` and a `gpu` partition, give the local run's predictions.
    Every job asking for a GPU (`gpus_per_job: 1`, as things.yaml asks) ran on `gpu` with one GPU
    request, every other job on `cpu` or locally (only the workflow's localrules), each with CPUs = its
    threads. Two runs rather than the whole grid: every rule a run needs is covered, and a grid on
    SLURM was the longest test of the suite (its jobs queue one by one on the test cluster)."""
    local, configs = things_workdir(tmp_path / "local", things_served, gpus_per_job=0)
    start = time.monotonic()
    snakemake(*configs, "--cores", "2", *SLURM_TARGETS, cwd=local)
    local_seconds = time.monotonic() - start
    workdir, configs = things_workdir(tmp_path / "slurm-run", things_served, gpus_per_job=1)
    plan = snakemake("-n", *configs, "--cores", "2", *SLURM_TARGETS, cwd=workdir)
    expected = job_table(plan.stdout + plan.stderr)
    start = time.monotonic()
    result = snakemake("--workflow-profile", "profiles/slurm", *SLURM_TARGETS, *configs,
                       "--slurm-init-seconds-before-status-checks", "2", cwd=workdir,
                       environ={**slurm.env(), **SLURM_SITE, "HF_HUB_OFFLINE": "1", "HF_TOKEN": SECRET})
    seconds = time.monotonic() - start
    output = result.stdout + result.stderr
    print(f"\nSLURM: install {slurm.install_seconds:.0f}s, start-up {slurm.startup_seconds:.1f}s; "
          f"two THINGS-fixture runs locally {local_seconds:.0f}s, on SLURM {seconds:.0f}s")

    localrules = set(re.findall(r"^    (\w+),$", (REPO / "Snakefile").read_text().split("localrules:", 1)[1]
                                .split("\n\n", 1)[0], re.M))
    ran_locally = Counter(re.findall(r"^localrule (\w+):", output, re.M))
    assert set(ran_locally) <= localrules, f"ran outside SLURM: {set(ran_locally) - localrules}"
    assert {"fetch_asset", "extract_things", "build_dataset"} <= set(ran_locally)  # THINGS's data path
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    jobs = [job for job in slurm.accounting() if job["JobName"] == run_id]
    ran = Counter(job["Comment"].removeprefix("rule_").split("_wildcards_")[0] for job in jobs)
    assert ran + ran_locally == expected and {"train_projector", "evaluate_projector"} <= set(ran), (
        ran, ran_locally, expected)
    assert not set(ran) & localrules, set(ran) & localrules
    assert {(job["State"], job["Account"]) for job in jobs} == {("COMPLETED", ACCOUNT)}
    submitted = submitted_jobs(output)
    assert sorted(submitted) == sorted(job["JobIDRaw"] for job in jobs)
    assert {"extract_features", "train_projector", "evaluate_projector", "name_projector"} <= {
        info["rule"] for info in submitted.values() if info["gpu"] > 0}
    for job in jobs:
        info = submitted[job["JobIDRaw"]]
        details = slurm.job_details(job["JobIDRaw"])
        gpu_requests = [key for key in ("TresPerJob", "TresPerNode", "TresPerSocket", "TresPerTask")
                        if "gpu" in details.get(key, "")]
        if info["gpu"] > 0:
            assert job["Partition"] == GPU_PARTITION, (info, job)
            assert gpu_requests == ["TresPerJob"] and details["TresPerJob"] == "gres:gpu:1", (info, details)
            assert "gres/gpu=1" in job["AllocTRES"], (info, job)
        else:
            assert job["Partition"] == CPU_PARTITION and not gpu_requests, (info, job, details)
            assert "gres/gpu" not in job["AllocTRES"], (info, job)
        assert int(job["AllocCPUS"]) == info["threads"], (info, job)

    for name in SLURM_TARGETS:
        assert (workdir / name).read_text() == (local / name).read_text(), name

    leaks = [str(p.relative_to(workdir)) for p in files_under(workdir) if SECRET.encode() in p.read_bytes()]
    assert not leaks, f"HF_TOKEN written to: {leaks}"
