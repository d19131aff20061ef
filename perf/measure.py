"""The measurements: each contender (ours vs a baseline) on the same models and rows, timed by
`harness.interleaved`, with the checks that the contenders compute the same thing."""

from __future__ import annotations

import copy
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from baselines import llava_loss, llava_step, score_generate
from flops import Dims, train_flops
from harness import autocast, interleaved, matmul, med
from taxvlm.models.lms import common_prefix_len
from taxvlm.models.projector import build_projector
from taxvlm.evaluation.scoring import score_questions, score_questions_reference
from taxvlm.training.loop import epoch_order
from taxvlm.training.objective import batch_loss
from workload import BATCH, DINO_L, PAPER_LMS, PROJECTOR, TINY_DINO, TOKEN_PROJECTOR, Setup, paper_lm, random_dinov2, with_tokens

def bench_eval(s: Setup, reps: int, spec: dict[str, Any] = PROJECTOR) -> dict[str, Any]:
    """Questions/s of the three scorers on `s.eval_rows` about `s.feats` (one shared projector)."""
    torch.manual_seed(0)
    projector = build_projector(spec, s.feats.shape[-1], s.model.config.hidden_size).to(s.dev).eval()
    image_index = [r[0] for r in s.eval_rows]
    texts = [r[1] for r in s.eval_rows]
    results: dict[str, torch.Tensor] = {}

    def ours() -> None:
        with autocast(s.dev):
            y, n = score_questions(s.model, s.prompt, projector, s.feats, image_index, texts, batch_size=64)
        results["ours"] = torch.stack([y, n], 1)

    def reference() -> None:
        with autocast(s.dev):
            y, n = score_questions_reference(s.model, s.prompt, projector, s.feats, image_index, texts)
        results["reference"] = torch.stack([y, n], 1)

    def generate() -> None:
        with autocast(s.dev):
            results["generate"] = score_generate(s, projector)

    times = interleaved({"generate": generate, "reference": reference, "ours": ours}, reps, s.dev)
    n = len(texts)
    return {
        "n": n,
        "images": len(set(image_index)),
        "qps": {k: n / med(v) for k, v in times.items()},
        "diff_generate": (results["ours"] - results["generate"]).abs().max().item(),
        "diff_reference": (results["ours"] - results["reference"]).abs().max().item(),
    }


def eval_many_tokens(s: Setup, reps: int, tokens: int, n_images: int, d_vis: int = 384) -> dict[str, Any]:
    """The paper-like regime (hundreds of image tokens per question): prefix reuse pays per image."""
    saved, saved_rows = s.feats, s.eval_rows
    images = sorted({r[0] for r in saved_rows})[:n_images]
    s.eval_rows = [r for r in saved_rows if r[0] in images]
    torch.manual_seed(0)
    s.feats = torch.randn(len(saved), tokens, d_vis).half()
    try:
        return {**bench_eval(s, reps, {"projector": "mlp", "prefix_tokens": 1, "features": "tokens"}), "tokens": tokens}
    finally:
        s.feats, s.eval_rows = saved, saved_rows



def row_batches(s: Setup, batch_size: int, batching: str) -> list[list[int]]:
    """Full batches of `s.train_rows` in the order `train_projector` would draw them (`epoch_order`):
    `rows` = i.i.d. rows, `images` = each image's rows consecutive."""
    order = epoch_order(torch.tensor([r[0] for r in s.train_rows]), 0, 0, batching).tolist()
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def _ids(s: Setup, batch: list[int]) -> tuple[torch.Tensor, list[list[int]], list[list[int]]]:
    rows = [s.train_rows[i] for i in batch]
    image_idx = torch.tensor([r[0] for r in rows])
    return image_idx, [s.prompt.question_ids(r[1]) for r in rows], [s.prompt.answers[r[2]] for r in rows]


def our_step(s: Setup, projector: nn.Module, opt: torch.optim.Optimizer, batch: list[int]) -> torch.Tensor:
    """One step exactly as `train_projector` runs it: `batch_loss` on the feature cache, AdamW, clip."""
    loss = batch_loss(s.model, s.prompt.head, projector, s.feats, *_ids(s, batch))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(projector.parameters(), 1.0)
    opt.step()
    return loss.detach()



def step_flops(s: Setup, batch: list[int], image_tokens: int) -> float:
    """Analytic FLOPs of `our_step` on `batch`: one prefix `[head][image][common question tokens]` per
    distinct image, then every row's padded suffix attending to it (`shared_prefix_forward`)."""
    image_idx, questions, answers = _ids(s, batch)
    common = common_prefix_len(questions)
    prefix = len(s.prompt.head) + image_tokens + common
    suffix = max(len(q) - common + len(a) - 1 for q, a in zip(questions, answers))
    dims = Dims.of(s.model.config)
    logits = sum(len(a) for a in answers)
    return train_flops(dims, len(set(image_idx.tolist())), prefix, 0) + train_flops(
        dims, len(batch), suffix, logits, past=prefix
    )


def bench_train(s: Setup, reps: int, batch_size: int, with_matmul: bool = True) -> dict[str, Any]:
    """Samples/s of the LLaVA-style baseline and of our step with i.i.d. (`rows`) and image-grouped
    (`images`) batches; the baseline runs the image-grouped batches (it has nothing to share, so
    grouping does not change its work)."""
    torch.manual_seed(0)
    base = build_projector(s.projector, s.feats.shape[-1], s.model.config.hidden_size).to(s.dev)
    batches = {b: row_batches(s, batch_size, b) for b in ("rows", "images")}
    # same projector, same batch: the two losses must agree (features: fp16 cache vs fresh fp32)
    with torch.no_grad():
        ours_loss = batch_loss(s.model, s.prompt.head, base, s.feats, *_ids(s, batches["images"][0])).item()
        with autocast(s.dev):
            llava = llava_loss(s, base, batches["images"][0]).item()

    def stepper(fn: Callable[..., torch.Tensor], batching: str) -> Callable[[], None]:
        projector = copy.deepcopy(base)
        opt = torch.optim.AdamW(projector.parameters(), lr=1e-3)
        cursor = iter(range(10**9))

        def run() -> None:
            fn(s, projector, opt, batches[batching][next(cursor) % len(batches[batching])])

        return run

    fns = {"llava": stepper(llava_step, "images"), "ours_rows": stepper(our_step, "rows"),
           "ours_images": stepper(our_step, "images")}  # fmt: skip
    mm_flops = 0.0
    if with_matmul:
        fns["matmul"], mm_flops = matmul(s.dev, torch.bfloat16 if s.dev.type == "cuda" else torch.float32)
    times = interleaved(fns, reps, s.dev)
    k = s.feats.shape[1] if s.feats.ndim == 3 else s.projector["prefix_tokens"]
    out: dict[str, Any] = {"batch": batch_size, "loss_ours": ours_loss, "loss_llava": llava, "image_tokens": k,
                           "rows_per_image": len(s.train_rows) / len({r[0] for r in s.train_rows})}  # fmt: skip
    out["sps"] = {name: batch_size / med(times[name]) for name in ("llava", "ours_rows", "ours_images")}
    out["images_per_batch"] = statistics.mean(len({s.train_rows[i][0] for i in b}) for b in batches["images"])
    for batching in ("rows", "images"):
        flops = statistics.mean(step_flops(s, b, k) for b in batches[batching])
        out[f"flops_{batching}"] = flops
        out[f"achieved_{batching}"] = flops / med(times[f"ours_{batching}"])
    if with_matmul:
        out["peak"], out["peak_best"] = mm_flops / med(times["matmul"]), mm_flops / min(times["matmul"])
        out["peak_key"] = "matmul_bf16" if s.dev.type == "cuda" else "matmul_fp32"
    return out


def bench_scaling(s: Setup, tokens: list[int], batches: list[int], reps: int, d_vis: int = 384) -> list[dict[str, Any]]:
    """Our step with a token projector on synthetic `[N, T, d_vis]` features (T image tokens), on the
    first batch of each batching; on a CPU, configurations above 1024 image tokens per step are
    skipped (minutes each)."""
    out = []
    saved = s.feats
    grid = [(t, b) for t in tokens for b in batches if s.dev.type == "cuda" or t * b <= 1024]
    for n, (t, b) in enumerate(grid):
        torch.manual_seed(0)
        s.feats = torch.randn(len(saved), t, d_vis).half()
        proj = build_projector(TOKEN_PROJECTOR, d_vis, s.model.config.hidden_size).to(s.dev)
        opt = torch.optim.AdamW(proj.parameters(), lr=1e-3)
        first = {batching: row_batches(s, b, batching)[0] for batching in ("rows", "images")}
        steps = {batching: (lambda batch=batch: our_step(s, proj, opt, batch)) for batching, batch in first.items()}
        times = interleaved(steps, reps, s.dev, warmup=n == 0 or s.dev.type == "cuda")
        row = {"tokens": t, "batch": b, "n_images": len({s.train_rows[i][0] for i in first["images"]})}
        for batching, batch in first.items():
            row[batching] = {"seconds": med(times[batching]), "flops": step_flops(s, batch, t)}
        out.append(row)
        print(f"scaling {row}", file=sys.stderr)
    s.feats = saved
    return out



def bench_paper_lms(s: Setup, reps: int, quick: bool) -> dict[str, dict[str, Any]]:
    """Training (`bench_train`) and evaluation (`bench_eval`) of each paper LM in the paper regime:
    DINOv2-L/14 at the paper's shape (random weights; 256 patch tokens × 1024-d, which the LLaVA-style
    baseline recomputes every step) through a per-token projector, on `s`'s rows and tokenizer. An LM
    that does not fit the device is recorded as such and the others still run."""
    encoder = random_dinov2(TINY_DINO if quick else DINO_L, s.dev)
    base = with_tokens(s, encoder)
    out: dict[str, dict[str, Any]] = {}
    for key, (name, _, _) in PAPER_LMS.items():
        t0 = time.perf_counter()
        try:
            ps = replace(base, model=paper_lm(key, s.dev, quick))
            out[key] = {"train": bench_train(ps, reps, BATCH), "eval": bench_eval(ps, reps, TOKEN_PROJECTOR)}
        except torch.OutOfMemoryError as error:
            out[key] = {"error": f"out of memory: {str(error).splitlines()[0]}"}
        ps = None  # free this LM before the next one is drawn
        gc.collect()
        if s.dev.type == "cuda":
            out[key]["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        out[key]["seconds"] = time.perf_counter() - t0
        print(f"paper LM {name}: {out[key]}", file=sys.stderr)
    return out

