"""Where and with what a GPU rule's job runs (issue 30): the resources every GPU rule declares.

A rule runs on a GPU when its `gpu` resource is > 0 (`compute.gpus_per_job`); such a job is placed by
what it is, never by its rule's name: `gpu_job_resources` gives it its one GPU request (the `gpu`
resource, which the SLURM executor plugin turns into `--gpus=N`; no `gres`), the GPU partition, and host
memory and runtime scaled by the size of its model. CPUs are the rule's `threads` (the plugin's
`--cpus-per-task`). Jobs with `gpu: 0` get none of the GPU keys and take the profile's defaults.

Site values come from the environment, never from a tracked file:
- `TAXVLM_SLURM_GPU_PARTITION`: the partition of GPU jobs (unset: the job carries the variable's name,
  so sbatch refuses it naming the variable instead of sending it to the CPU partition);
- `TAXVLM_SLURM_GPU_CONSTRAINT` (optional): a node constraint for GPU jobs (`-C`), e.g. to ask for
  cards of at least 48 GB (the estimate of `gpu_memory_gib` for Qwen3-8B's jobs is about 50 GiB).
The CPU partition and the account are the profile's `$TAXVLM_SLURM_CPU_PARTITION` and
`$TAXVLM_SLURM_ACCOUNT` (profiles/slurm/config.yaml).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

GPU_PARTITION_VAR = "TAXVLM_SLURM_GPU_PARTITION"
GPU_CONSTRAINT_VAR = "TAXVLM_SLURM_GPU_CONSTRAINT"

# minutes of a job of each kind for a model of at most 1B parameters on one GPU (first attempt)
BASE_RUNTIME_MIN = {"features": 120, "train": 240, "evaluate": 60, "decode": 120, "probe": 120, "tune": 240,
                    "compositional": 120}
BASE_MEM_MB = 16000  # host memory of a GPU job besides its model's weights
MEM_MB_PER_BILLION = 5000  # host copy of the weights while loading (fp32 at worst) and their buffers
SMALL_MODEL_BILLIONS = 1.0  # models without a size in their name (encoders, tiny converted models)
_SIZE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*([bBmM])(?![A-Za-z])")


def model_billions(spec: Mapping[str, Any] | None, key: str = "") -> float:
    """Parameters of a model in billions, read from its hub id or config key (`Qwen/Qwen3-8B`: 8,
    `qwen3_0.6b`: 0.6, `gemma-3-270m`: 0.27); `SMALL_MODEL_BILLIONS` when neither names a size."""
    for text in ((spec or {}).get("id") or "", (spec or {}).get("name") or "", key):
        names = re.split(r"[/_-]", str(text))
        for part in reversed(names):
            match = _SIZE.fullmatch(part.strip())
            if match:
                value = float(match.group(1))
                return value if match.group(2).lower() == "b" else value / 1000
    return SMALL_MODEL_BILLIONS


def gpu_memory_gib(billions: float) -> float:
    """GPU memory a job of a model of `billions` parameters needs, roughly: bf16 weights, activations
    and the workspace of batched scoring (about 47-50 GiB for 8B, the issue's measure)."""
    return round(2.0 + 6.0 * billions, 1)


def host_mem_mb(billions: float) -> int:
    return int(BASE_MEM_MB + MEM_MB_PER_BILLION * max(billions, SMALL_MODEL_BILLIONS))


def runtime_min(kind: str, billions: float, members: int = 1, attempt: int = 1) -> int:
    """Wall time of a job: its kind's base, x(1 + B/4) for a model of B billion parameters, x the
    number of runs a fused job trains (in stacks of 4), x the attempt (a retry gets more time)."""
    if kind not in BASE_RUNTIME_MIN:
        raise ValueError(f"unknown GPU job kind {kind!r}; known: {sorted(BASE_RUNTIME_MIN)}")
    scale = (1 + max(billions, SMALL_MODEL_BILLIONS) / 4) * math.ceil(max(members, 1) / 4)
    return int(math.ceil(BASE_RUNTIME_MIN[kind] * scale * max(attempt, 1)))


def gpu_job_resources(
    gpus: int, kind: str, billions: float, env: Mapping[str, str], members: int = 1, attempt: int = 1
) -> dict[str, Any]:
    """The resources of one job of a GPU rule (`gpus` = `compute.gpus_per_job`). With `gpus` 0 the
    job is a CPU job: only `gpu: 0`, everything else from the profile's defaults."""
    if gpus <= 0:
        return {"gpu": 0}
    resources: dict[str, Any] = {
        "gpu": int(gpus),
        "slurm_partition": env.get(GPU_PARTITION_VAR) or f"${GPU_PARTITION_VAR}",
        "mem_mb": host_mem_mb(billions),
        "runtime": runtime_min(kind, billions, members, attempt),
    }
    if env.get(GPU_CONSTRAINT_VAR):
        resources["constraint"] = env[GPU_CONSTRAINT_VAR]
    return resources
