"""Throughput of the contrastive step on cached features: the pipeline-mode dual encoder
(cached image features → projector, pooled; cached text states → linear head) with K hard negatives
per caption against the same step without hard negatives (`itc`). Target: "≥ 90% of the throughput of
the same step without hard negatives, per hard negative added": the table gives the ratio
throughput(K) / throughput(0) and its K-th root (the factor per added negative; target ≥ 0.9). The
text side is cached, so a negative costs rows of a `[B, d]` matmul and of the loss, not an encoder pass.

    .venv/bin/python perf/compositional.py [--device cpu|cuda] [--reps 20] [--out FILE]

Shapes are the default's: EfficientNet-Lite0 pooled features (1280), SmolLM2-135M width (576), the
`mlp` projector with 4 prefix tokens, batch 128 (CE-CLIP's per-GPU batch), random data.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from taxvlm.compositional import contrastive as C
from taxvlm.compositional.losses import ABLATIONS
from taxvlm.models.projector import Projector

D_VIS, D_LM, N_IMAGES, BATCH = 1280, 576, 4096, 128


def _setup(k: int, device: str) -> tuple[C.PipelineDualEncoder, C.PairData]:
    torch.manual_seed(0)
    n_texts = N_IMAGES * (1 + k)
    projector = Projector("mlp", "pooled", D_VIS, D_LM, prefix_tokens=4)
    model = C.PipelineDualEncoder(projector, torch.randn(N_IMAGES, D_VIS), torch.randn(n_texts, D_LM)).to(device)
    negatives = torch.arange(N_IMAGES, n_texts).view(N_IMAGES, k) if k else torch.zeros(N_IMAGES, 0, dtype=torch.long)
    data = C.PairData(
        torch.arange(N_IMAGES),
        torch.arange(N_IMAGES),
        negatives,
        torch.ones_like(negatives, dtype=torch.bool),
        [f"t{i}" for i in range(k)],
    )
    return model, data


class _Stepper:
    """One optimizer step (forward, loss, backward, AdamW) of the pipeline-mode model at K negatives."""

    def __init__(self, k: int, device: str):
        self.model, self.data = _setup(k, device)
        self.terms = ABLATIONS["all" if k else "itc"]
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-4)
        self.theta = torch.zeros(k, device=device)
        self.recipe = C.Recipe(1e-4, 0.1, (0.9, 0.98), 1e-6, 0, BATCH, 1, 0.3, 0.2)
        self.gen = torch.Generator().manual_seed(0)
        self.device = device

    def __call__(self) -> float:
        rows = torch.randperm(N_IMAGES, generator=self.gen)[:BATCH]
        if self.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        image, text, negs = C._batch_embeddings(self.model, self.data, rows, self.terms.hard_negatives)
        loss, _, self.theta = C._step_loss(
            self.model, self.data, rows, image, text, negs, self.theta, self.recipe, self.terms
        )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def paired_seconds(k: int, device: str, reps: int) -> tuple[float, float]:
    """Fastest step without and with K negatives, the two interleaved step by step so that a busy
    machine slows both alike (the minimum is the least disturbed)."""
    base, with_k = _Stepper(0, device), _Stepper(k, device)
    for _ in range(2):  # warm-up
        base(), with_k()
    times = [(base(), with_k()) for _ in range(reps)]
    return min(t for t, _ in times), min(t for _, t in times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("perf/results-compositional.md"))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: least disturbed by a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = [
        f"# Contrastive step on cached features ({args.device}, {args.threads} CPU thread(s), batch {BATCH}, "
        f"fastest of {args.reps} interleaved)",
        "",
        f"Machine load average at the start (1/5/15 min): {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"{os.cpu_count()} CPUs.",
        "",
        "| K hard negatives | ms / step without | ms / step with K (all terms) | throughput ratio | per added negative |",
        "|---|---|---|---|---|",
    ]
    for k in range(1, 7):
        base, t = paired_seconds(k, args.device, args.reps)
        ratio = base / t
        lines.append(f"| {k} | {base * 1e3:.2f} | {t * 1e3:.2f} | {ratio:.3f} | {ratio ** (1 / k):.3f} |")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
