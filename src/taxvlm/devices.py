"""Which device a job runs on, and the CPU setting every job applies before it computes."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """'auto' → the GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def flush_denormals_on_cpu(device: torch.device) -> None:
    """Treat subnormal floats as zero on the CPU, where they slow matmuls several-fold.

    Softmax tails of a frozen LM underflow into subnormals; flushing them changes values below
    ~1e-38 only, the same way in every run, so results stay deterministic.
    """
    if device.type == "cpu":
        torch.set_flush_denormal(True)
