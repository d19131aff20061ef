"""Timing: contenders interleaved rep by rep (so background load hits them alike), medians, a
matmul yardstick for utilisation, and a line describing the machine a table was measured on."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    fns: dict[str, Callable[[], Any]], reps: int, dev: torch.device, warmup: bool = True
) -> dict[str, list[float]]:
    """Seconds per call of each fn, after one warm-up call each; the fns alternate within every rep so
    that changing background load affects all of them alike."""
    for fn in fns.values() if warmup else ():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            _sync(dev)
            t0 = time.perf_counter()
            fn()
            _sync(dev)
            times[name].append(time.perf_counter() - t0)
    return times


def med(xs: list[float]) -> float:
    return statistics.median(xs)


MATMUL_N = {"cpu": 2048, "cuda": 8192}  # smaller GPU matmuls leave an H100's tensor cores idle between tiles


def matmul(dev: torch.device, dtype: torch.dtype) -> tuple[Callable[[], Any], float]:
    """A large square matmul (`MATMUL_N`) on all threads (the achievable-peak yardstick) and its FLOPs."""
    n = MATMUL_N[dev.type]
    a, b = (torch.randn(n, n, device=dev, dtype=dtype) for _ in range(2))
    return (lambda: torch.mm(a, b)), 2.0 * n**3


def autocast(dev: torch.device) -> Any:
    return torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda")


def machine(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} "
            f"torch threads, load average {load} (shared with other jobs), torch {torch.__version__}")  # fmt: skip

