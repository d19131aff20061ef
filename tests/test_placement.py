"""GPU placement follows the rule's resources, never its name (issue 30): taxvlm.placement, the
shipped SLURM profile, and the resources every job of a GPU grid gets from it (a dry run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from taxvlm import placement

from spec_builders import preset

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles/slurm/config.yaml"


@pytest.mark.parametrize(("spec", "key", "billions"), [
    ({"id": "Qwen/Qwen3-8B"}, "qwen3_8b", 8.0),
    ({"id": "Qwen/Qwen3-0.6B"}, "", 0.6),
    ({"id": "meta-llama/Llama-3.2-1B-Instruct"}, "", 1.0),
    ({"id": "unsloth/gemma-3-270m"}, "", 0.27),
    (None, "qwen3_1.7b", 1.7),
    ({"id": "facebook/dinov2-large"}, "dinov2_l", placement.SMALL_MODEL_BILLIONS),
    ({"weights": {"convert": "tiny_llama"}}, "tiny_llama", placement.SMALL_MODEL_BILLIONS),
])
def test_model_size_from_its_name(spec: dict | None, key: str, billions: float) -> None:
    assert placement.model_billions(spec, key) == pytest.approx(billions)


def test_gpu_job_resources_scale_with_the_model_and_attempt() -> None:
    env = {placement.GPU_PARTITION_VAR: "a100"}
    small = placement.gpu_job_resources(1, "train", 0.6, env)
    big = placement.gpu_job_resources(1, "train", 8.0, env)
    assert small["gpu"] == big["gpu"] == 1 and small["slurm_partition"] == "a100"
    assert "gres" not in small and "cpus_per_task" not in small and "constraint" not in small
    assert big["mem_mb"] > small["mem_mb"] and big["runtime"] > small["runtime"]
    assert placement.runtime_min("train", 8.0, attempt=2) == 2 * placement.runtime_min("train", 8.0)
    assert placement.runtime_min("train", 1.0, members=8) == 2 * placement.runtime_min("train", 1.0)
    assert 45 <= placement.gpu_memory_gib(8.0) <= 52  # the issue's ~47 GiB for Qwen3-8B
    with pytest.raises(ValueError, match="unknown GPU job kind 'trian'"):
        placement.runtime_min("trian", 1.0)


def test_site_values_come_from_the_environment() -> None:
    unset = placement.gpu_job_resources(1, "features", 1.0, {})
    assert unset["slurm_partition"] == "$TAXVLM_SLURM_GPU_PARTITION"  # sbatch refuses it by that name
    constrained = placement.gpu_job_resources(1, "features", 1.0, {placement.GPU_CONSTRAINT_VAR: "gpu48g"})
    assert constrained["constraint"] == "gpu48g"
    assert placement.gpu_job_resources(0, "train", 8.0, {placement.GPU_PARTITION_VAR: "gpu"}) == {"gpu": 0}


def test_shipped_profile_names_no_rule_and_no_site_value() -> None:
    profile = yaml.safe_load(PROFILE.read_text())
    assert "set-resources" not in profile and "set-threads" not in profile
    defaults = profile["default-resources"]
    assert "cpus_per_task" not in defaults and "gres" not in defaults and "gpu" not in defaults
    assert defaults["slurm_account"] == "'$TAXVLM_SLURM_ACCOUNT'"
    assert defaults["slurm_partition"] == "'$TAXVLM_SLURM_CPU_PARTITION'"
    assert not any("<" in str(value) for value in [*profile.values(), *defaults.values()])  # no placeholders


def _dry_run_jobs(tmp_path: Path, env: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    (tmp_path / "gpu.yaml").write_text("compute:\n  gpus_per_job: 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--workflow-profile", str(PROFILE.parent), "--configfile",
         ".test/config/config.yaml", str(tmp_path / "gpu.yaml"), "--directory", str(tmp_path / "wd")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), **env},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs, rule = [], None
    for line in (proc.stdout + proc.stderr).splitlines():
        match = re.match(r"^(?:local)?rule (\w+):", line)
        if match:
            rule = match.group(1)
        elif line.strip().startswith("resources:") and rule:
            pairs = dict(item.split("=", 1) for item in line.strip()[len("resources: "):].split(", "))
            jobs.append((rule, pairs))
            rule = None
    return jobs


def test_every_gpu_job_goes_to_the_gpu_partition_with_one_request(tmp_path: Path) -> None:
    env = {"TAXVLM_SLURM_ACCOUNT": "acct", "TAXVLM_SLURM_CPU_PARTITION": "cpu",
           "TAXVLM_SLURM_GPU_PARTITION": "gpu"}
    jobs = _dry_run_jobs(tmp_path, env)
    gpu_rules = {rule for rule, res in jobs if res.get("gpu") == "1"}
    assert {"extract_features", "train_projector", "evaluate_projector", "name_projector", "caption_decode",
            "probe_states", "textprobe", "upper_bound"} <= gpu_rules
    for rule, res in jobs:
        assert res["slurm_account"] == "acct", rule
        assert "gres" not in res and "cpus_per_task" not in res, rule
        if res.get("gpu") == "1":
            assert res["slurm_partition"] == "gpu" and int(res["mem_mb"]) >= 16000, rule
        else:
            assert res["slurm_partition"] == "cpu", rule


def test_localrules_are_downloads_data_and_aggregation_never_gpu_rules() -> None:
    # the Snakefile's block, and a stage's own (compositional.smk's, read only when it is enabled)
    sources = "\n".join(p.read_text() for p in [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))])
    blocks = re.findall(r"^localrules:\n((?:    \w+,\n)+)", sources, re.M)
    assert blocks, "no localrules block"
    local = {rule for block in blocks for rule in re.findall(r"\w+", block)}
    defined = set(re.findall(r"^rule (\w+):", sources, re.M))
    assert local <= defined, local - defined
    gpu_rules = set(re.findall(r"^rule (\w+):(?:(?!^rule ).)*?\*\*gpu_job\(", sources, re.M | re.S))
    assert gpu_rules and not local & gpu_rules
    assert {"fetch_asset", "extract_things", "build_dataset", "build_questions", "materialize_condition",
            "collect_metrics", "figures", "tables"} <= local


def test_hub_models_are_fetched_once_on_the_login_node_and_jobs_load_the_fetched_folders(tmp_path: Path) -> None:
    """The paper grid (`config/things.yaml`): one local `prefetch_model` job per hub model, and every
    job that loads a model reads its fetched folder, so no GPU job reaches the hub."""
    assert "prefetch_model" in re.search(r"^localrules:\n((?:    \w+,\n)+)", (REPO / "Snakefile").read_text(), re.M)[1]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "config/things.yaml",
         "--directory", str(tmp_path / "wd")],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    config = preset("config/things.yaml")
    hub_models = {f"resources/hub/{family}/{name}" for family in ("encoders", "lms")
                  for name, spec in config[family].items() if not spec.get("weights")}  # fmt: skip
    jobs = re.findall(r"^(?:local)?rule (\w+):\n((?:    .+\n)+)", proc.stdout, re.M)
    fetched = {re.search(r"output: (\S+)", block)[1] for rule, block in jobs if rule == "prefetch_model"}
    assert fetched == hub_models
    loaders = [(rule, block) for rule, block in jobs if rule in {"extract_features", "train_projector", "name_projector"}]
    assert loaders and all("resources/hub/" in re.search(r"input: (.+)", block)[1] for _, block in loaders)
