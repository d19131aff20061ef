"""The paper grid's cost: from measured per-LM rates, and analytically from FLOPs and an MFU."""

from __future__ import annotations

import collections
from types import SimpleNamespace
from typing import Any

from flops import Dims, forward_flops, train_flops
from workload import BATCH, EPOCHS, PAPER_LMS, ROOT, SAME_SHAPE

H100_BF16_PEAK = 989e12  # dense, no sparsity (SXM datasheet)
QWEN3_06B = Dims.of(SimpleNamespace(**PAPER_LMS["qwen3_0.6b"][2]))
WORKLOAD_TEXT = (
    "training images 0.70 × 1,222 concepts × 26,107/1,854 THINGS images per concept, test images 0.25 × the "
    "same; questions per image 2 + 2 × 2,040/1,222 (a leaf pair and a pair per leaf–hypernym pair) — the `none` "
    "condition, an upper bound (deprivation removes hypernym rows)"
)


def things_workload() -> tuple[float, float, float]:
    """Training images, test images and questions per image of one run on THINGS (docs/protocol.md §3)."""
    concepts, per_concept = 1222, 26107 / 1854
    return 0.70 * concepts * per_concept, 0.25 * concepts * per_concept, 2 + 2 * 2040 / 1222


def things_runs() -> list[Any]:
    """The training runs of the paper grid, `config/things.yaml` (random-init twins included)."""
    import yaml

    from taxvlm.config import expand_experiments

    return expand_experiments(yaml.safe_load((ROOT / "config/things.yaml").read_text())["experiments"])


def project_measured(costs: dict[str, dict[str, Any]]) -> tuple[str, list[tuple[str, int, float, float, float]]]:
    """The grid of `config/things.yaml` on this device from the measured samples/s and questions/s of
    each LM (`bench_paper_lms`): per LM, runs × (5 epochs of training rows / samples/s + test questions /
    questions/s), for the LLaVA-style baseline (+ `generate` scoring) and ours with each batching."""
    runs = things_runs()
    per_lm = collections.Counter(SAME_SHAPE.get(r.lm, r.lm) for r in runs)
    train_imgs, test_imgs, q_per_image = things_workload()
    rows, questions = EPOCHS * train_imgs * q_per_image, test_imgs * q_per_image
    table = []
    for lm, n in sorted(per_lm.items(), key=lambda kv: list(PAPER_LMS).index(kv[0])):
        if "train" not in costs.get(lm, {}):
            continue
        sps, qps = costs[lm]["train"]["sps"], costs[lm]["eval"]["qps"]
        hours = [n * (rows / sps[t] + questions / qps[e]) / 3600
                 for t, e in (("llava", "generate"), ("ours_rows", "ours"), ("ours_images", "ours"))]  # fmt: skip
        table.append((PAPER_LMS[lm][0], n, *hours))
    text = (f"- {len(runs)} runs of `config/things.yaml` (random-init twins included) by LM shape "
            f"(Llama-3.2-1B-Instruct costs what Llama-3.2-1B does); per run {rows:,.0f} training rows "
            f"({EPOCHS} epochs) and {questions:,.0f} test questions; {WORKLOAD_TEXT}; the encoder's feature "
            "extraction (once per encoder) and checkpointing are not counted")  # fmt: skip
    return text, table


def project_grid(mfu_measured: float, batch: int = BATCH) -> tuple[str, list[tuple[str, float, float]]]:
    """Paper-grid cost on one H100 (analytic FLOPs; MFU is an assumption, not a measurement), with
    i.i.d. row batches and with image-grouped batches (`training.batching: images`)."""
    train_imgs, test_imgs, q_per_image = things_workload()
    image_tokens, text_tokens, common, answer_tokens, runs, epochs = 256, 20, 4, 2, len(things_runs()), EPOCHS
    prefix, suffix = image_tokens + common, text_tokens - common + answer_tokens - 1
    per_row = train_flops(QWEN3_06B, 1, prefix, 0) + train_flops(QWEN3_06B, 1, suffix, answer_tokens, past=prefix)
    # grouped: an image's rows are consecutive, so its prefix runs once per batch it reaches into
    prefixes_per_image = 1 + (q_per_image - 1) / batch
    per_image_grouped = prefixes_per_image * train_flops(QWEN3_06B, 1, prefix, 0) + q_per_image * train_flops(
        QWEN3_06B, 1, suffix, answer_tokens, past=prefix
    )
    train_rows_run = per_row * train_imgs * q_per_image * epochs
    train_images_run = per_image_grouped * train_imgs * epochs
    eval_question = forward_flops(QWEN3_06B, 1, text_tokens - common, 1, past=prefix)
    eval_run = test_imgs * (forward_flops(QWEN3_06B, 1, prefix, 0) + q_per_image * eval_question)
    totals = {b: runs * (t + eval_run) for b, t in (("rows", train_rows_run), ("images", train_images_run))}
    lines = [
        f"- {WORKLOAD_TEXT}",
        f"- Qwen3-0.6B (d 1024, 28 layers, ff 3072, 16/8 heads × head_dim 128, vocab 151,936; "
        f"{QWEN3_06B.nonembed / 1e6:.0f} M non-embedding params); sequence = {image_tokens} image + "
        f"{text_tokens} text tokens (assumed; the first {common} shared by every question), {answer_tokens} answer "
        "tokens scored",
        f"- training per run, 5 epochs of {train_imgs * q_per_image:,.0f} rows, batch {batch}: "
        f"{train_rows_run / 1e15:.0f} PFLOP with `batching: rows` ({per_row / 1e9:.0f} GFLOP/row), "
        f"{train_images_run / 1e15:.0f} PFLOP with `batching: images` (each image prefix {prefixes_per_image:.2f}× "
        f"per epoch); evaluation per run {eval_run / 1e15:.1f} PFLOP (image prefix once per test image); encoder "
        "feature extraction (once per encoder) is ignored",
        f"- grid: the {runs} runs of `config/things.yaml` → {totals['rows'] / 1e18:.1f} EFLOP (rows) / "
        f"{totals['images'] / 1e18:.1f} EFLOP (images); H100 dense bf16 peak {H100_BF16_PEAK / 1e12:.0f} TFLOP/s",
    ]
    hours = [(f"assumed MFU {m:.0%}" + (" (= the MFU measured here)" if m == mfu_measured else ""),
              *(totals[b] / (H100_BF16_PEAK * m) / 3600 for b in ("rows", "images")))
             for m in (0.40, 0.25, mfu_measured)]  # fmt: skip
    return "\n".join(lines), hours

