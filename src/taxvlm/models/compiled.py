"""Launch overhead (issue 19): the frozen LM's decoder forward captured by `torch.compile` on a few
fixed shapes, behind `training.compile` (`none` = eager, the reference).

On a GPU a small LM's training step is bound by kernel launches, not FLOPs. `torch.compile` fuses the
decoder's kernels (`default`), and `reduce-overhead` also replays them as one CUDA graph. Both need a
fixed shape, or every new shape compiles again. A batch's shape varies: its rows are padded to its
longest row, and an epoch's last batch is smaller. So `CompiledLM` pads every call to a bucket
(`dynamic=False`):
- length: rounded up to a multiple of `length_bucket`, with zero embeddings on the right. Attention
  is causal, so a real position never sees the padding after it, and its hidden state is exact;
- rows: padded with zero rows up to the most rows this LM has run so far in the same grad mode
  (training and scoring keep separate maxima), in multiples of `row_bucket`. The padded rows are cut
  from the output before any loss or score, so they add nothing to a loss or a gradient.
A run then compiles once per (length bucket, grad mode) after its first (largest) step. `compiles`
counts the distinct shapes; the tests check it against dynamo's own counters, so a shape leak shows.

A captured graph holds no KV cache, so a compiled LM runs every row in one pass
(`taxvlm.models.lms.shared_prefix_forward`). Calls with a cache (greedy decoding) stay eager.

Compiled kernels round differently from eager ones (fp32 on a CPU: the tests measure the gap), so
`compile` stays in the run's identity: it is in `train_config.json` and the checkpoint's
fingerprint, and a change reruns the run. The `reduce-overhead` path on CUDA is untested here (no
GPU was available when it was written); on a CPU it is the same as `default`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

COMPILE_MODES = ("none", "default", "reduce-overhead")


class CompiledLM(nn.Module):
    """A frozen causal LM whose cache-free decoder forward runs compiled on bucketed shapes; the
    rest (embeddings, LM head, config, cached decoding) is the wrapped LM's, eager."""

    def __init__(
        self, lm: nn.Module, mode: str, row_bucket: int, length_bucket: int = 16, backend: str = "inductor"
    ) -> None:
        super().__init__()
        if mode not in COMPILE_MODES[1:]:
            raise ValueError(f"training field 'compile' is {mode!r}; expected one of {list(COMPILE_MODES)}")
        self.lm, self.mode = lm, mode
        self.row_bucket, self.length_bucket = row_bucket, length_bucket
        self.max_rows: dict[bool, int] = {}
        self.shapes: set[tuple[int, int, bool, bool]] = set()
        options = {"mode": mode} if backend == "inductor" else {}
        self._compiled = torch.compile(self._decoder, backend=backend, dynamic=False, **options)

    @property
    def config(self) -> Any:
        return self.lm.config

    @property
    def base_model(self) -> nn.Module:
        return self.lm.base_model

    def get_input_embeddings(self) -> nn.Module:
        return self.lm.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm.get_output_embeddings()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped LM's own (eager) forward, for callers that want its full output."""
        return self.lm(*args, **kwargs)

    @property
    def compiles(self) -> int:
        """Distinct (padded shape, grad mode, deterministic algorithms) run so far: what dynamo
        guards on, so the compilations this wrapper has asked for."""
        return len(self.shapes)

    def hidden(self, embeds: torch.Tensor) -> torch.Tensor:
        """Final hidden states `[B, L, d]` of right-padded `embeds` `[B, L, d]`, through the compiled
        decoder on the bucketed shape (module docstring)."""
        n_rows, length = embeds.shape[:2]
        rows, padded_length = self._bucket(n_rows, length)
        padded = F.pad(embeds, (0, 0, 0, padded_length - length, 0, rows - n_rows))
        if self.mode == "reduce-overhead" and embeds.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the previous call's outputs are consumed by now
        return self._compiled(padded)[:n_rows, :length]

    def _bucket(self, n_rows: int, length: int) -> tuple[int, int]:
        """(rows, length) of the padded call; ratchets the row maximum of the current grad mode."""
        grad = torch.is_grad_enabled()
        rows = max(self.max_rows.get(grad, 0), math.ceil(n_rows / self.row_bucket) * self.row_bucket)
        self.max_rows[grad] = rows
        padded_length = math.ceil(length / self.length_bucket) * self.length_bucket
        self.shapes.add((rows, padded_length, grad, torch.are_deterministic_algorithms_enabled()))
        return rows, padded_length

    def _decoder(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.lm.base_model(inputs_embeds=embeds, use_cache=False).last_hidden_state


def maybe_compiled(model: nn.Module, mode: str, row_bucket: int) -> nn.Module:
    """`model` itself for `none` (eager, the reference), else wrapped in `CompiledLM`."""
    if mode == "none":
        return model
    return CompiledLM(model, mode, row_bucket)
