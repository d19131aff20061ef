"""Packed vs two-pass vs `rows` training steps on the default's shapes (issue 19, item 3).

One projector's training step (`taxvlm.training.objective.fused_batch_losses` with one member, as `train_projector`
runs it, then clip + AdamW) three ways, side by side in one process, interleaved rep by rep, medians:

- `rows`: the first batch of a `batching: rows` epoch (i.i.d. rows; one decoder pass when no image
  repeats);
- `images, two-pass`: the first batch of a `batching: images` epoch through the two-pass shared prefix
  (`taxvlm.models.lms.shared_prefix_forward`: the prefix once per image, its KV gathered to the rows);
- `images, packed`: the same batch packed (`taxvlm.models.packed`: one sequence per image, one pass);

plus the largest |Δ loss| packed vs two-pass on that batch, the tokens each way runs, and whether the
LM is accepted for packing (`packing_refusal`).

Shapes (the embedded default, config/config.yaml): its two LMs' architectures with random weights and
a small tokenizer (which changes only the embedding and the LM head at the answer positions):
SmolLM2-135M and Gemma-3-270m (sliding-window layers: the packed mask per layer type); pooled 1280-d
features through the `mlp` projector to 4 prefix tokens, batch 16, 5 rows per image. On a CPU the step
is compute-bound, so the ratios follow the tokens run; on a GPU packing removes the second pass's launches.

Run: `.venv/bin/python perf/packed.py [--quick] [--device cpu|cuda] [--reps N] [--lms smollm2 gemma3]
[--out FILE]`; `make perf` runs it after `perf/fused.py`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from fused import D_VIS, SMOLLM2_SHAPE, TINY_SHAPE, TRAINING, build_inputs, frozen_lm, interleaved, peak_memory
from harness import machine
from taxvlm.assets.tiny import build_tiny_causal_lm
from taxvlm.devices import flush_denormals_on_cpu
from taxvlm.io import atomic_path
from taxvlm.models.lms import build_prompt, common_prefix_len, load_lm
from taxvlm.models.packed import packing_refusal
from taxvlm.models.projector import build_projector
from taxvlm.training.loop import epoch_order
from taxvlm.training.objective import fused_batch_losses

GEMMA3_SHAPE = {"architecture": "gemma3", "hidden_size": 640, "num_hidden_layers": 18, "num_attention_heads": 4,
                "num_key_value_heads": 1, "head_dim": 256, "intermediate_size": 2048, "sliding_window": 512,
                "max_position_embeddings": 2048, "tie_word_embeddings": True, "seed": 0}  # fmt: skip  # Gemma-3-270m's
SHAPES = {"smollm2": ("SmolLM2-135M", SMOLLM2_SHAPE), "gemma3": ("Gemma-3-270m", GEMMA3_SHAPE)}
WAYS = ("rows", "images, two-pass", "images, packed")


def batches(
    root: Path, lm_dir: Path, dev: torch.device
) -> tuple[nn.Module, list[int], torch.Tensor, dict[str, tuple]]:
    """The LM, the prompt head, the feature cache and the first `rows` and `images` batches (image
    indices, prompt ids, answer ids)."""
    model, tok = load_lm(frozen_lm(lm_dir), dev)
    prompt = build_prompt(tok)
    data = torch.load(root / "features.pt", weights_only=True)
    index = {image: i for i, image in enumerate(data["image_ids"])}
    table = pd.read_csv(root / "train0.tsv", sep="\t")
    idx = torch.tensor([index[i] for i in table["image_id"]])
    out = {}
    for batching in ("rows", "images"):
        rows = epoch_order(idx, 0, 0, batching)[: TRAINING["batch_size"]].tolist()
        q = [prompt.question_ids(table["text"][i]) for i in rows]
        out[batching] = (idx[rows], q, [prompt.answers[table["answer"][i]] for i in rows])
    return model, prompt.head, data["pooled"], out


def tokens_run(head: list[int], batch: tuple, way: str) -> int:
    """Token positions the decoder runs for a batch (padding included), the FLOPs' proxy."""
    idx, q, a = batch
    rows = [x + y[:-1] for x, y in zip(q, a)]
    prefix = len(head) + TRAINING["prefix_tokens"]
    n_images = len(torch.unique(idx))
    if way == "rows" and n_images == len(idx):
        return len(rows) * (prefix + max(map(len, rows)))
    shared = common_prefix_len(q)
    suffixes = [len(r) - shared for r in rows]
    if way == "images, packed":
        per_image = [sum(s for s, i in zip(suffixes, idx.tolist()) if i == image) for image in set(idx.tolist())]
        return n_images * (prefix + shared + max(per_image))
    return n_images * (prefix + shared) + len(rows) * max(suffixes)


def bench_lm(root: Path, lm_dir: Path, reps: int, dev: torch.device) -> dict[str, object]:
    """One step each way on the same projector; the loss agreement packed vs two-pass."""
    model, head, feats, by_batching = batches(root, lm_dir, dev)
    torch.manual_seed(0)
    spec = {**TRAINING, "features": "pooled"}
    projector = build_projector(spec, D_VIS, model.get_input_embeddings().embedding_dim).to(dev)
    optimizer = torch.optim.AdamW(projector.parameters(), lr=0.0)  # lr 0: every rep sees the same projector
    losses: dict[str, float] = {}

    def step(way: str) -> None:
        batch = by_batching["rows" if way == "rows" else "images"]
        loss = fused_batch_losses(model, head, [projector], feats, [batch[0]], [batch[1]], [batch[2]],
                                  packed=way == "images, packed")[0]  # fmt: skip
        losses[way] = loss.item()
        loss.backward()
        nn.utils.clip_grad_norm_(projector.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = interleaved({way: (lambda w=way: step(w)) for way in WAYS}, reps, sync)
    return {
        "times": times,
        "tokens": {way: tokens_run(head, by_batching["rows" if way == "rows" else "images"], way) for way in WAYS},
        "dloss": abs(losses["images, packed"] - losses["images, two-pass"]),
        "images": len(torch.unique(by_batching["images"][0])),
        "refusal": packing_refusal(model) or "accepted",
    }


def report(args: argparse.Namespace, results: dict[str, dict], memory: str) -> str:
    """The markdown results file (numbers only from this run)."""
    bs = TRAINING["batch_size"]
    lines = [
        "# Packed vs two-pass vs `rows` training steps (issue 19, item 3)", "",
        f"Generated by `python perf/packed.py{' --quick' if args.quick else ''} --device {args.device} "
        f"--reps {args.reps} --lms {' '.join(args.lms)}` (`make perf`: the defaults); do not edit by hand.", "",
        f"- machine: {args.machine} (at the start; the step times are medians of interleaved reps, but a loaded "
        "machine still spreads them)",
        f"- LMs: {'tiny random' if args.quick else 'the architectures, random weights, small tokenizer'}; features: "
        f"pooled {D_VIS}-d → mlp projector → 4 prefix tokens; batch {bs}; one projector; {args.reps} timed reps "
        "after a warm-up, interleaved; medians",
        "- GPU ratio: unmeasured (no device was lent to the session that wrote this file)" if args.device == "cpu"
        else "", "",
        "| LM | packing | images in the `images` batch | way | step (s) | tokens run | rows/s | "
        "two-pass / this | rows / this |", "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    names = {lm: f"tiny {lm}-like" if args.quick else SHAPES[lm][0] for lm in results}
    for lm, r in results.items():
        t = r["times"]
        for way in WAYS:
            lines.append(
                f"| {names[lm]} | {r['refusal']} | {r['images']} | {way} | {t[way]:.3f} | {r['tokens'][way]} "
                f"| {bs / t[way]:.1f} | {t['images, two-pass'] / t[way]:.2f} | {t['rows'] / t[way]:.2f} |"
            )
    dloss = ", ".join(f"{names[lm]} {r['dloss']:.2e}" for lm, r in results.items())
    lines += ["", f"Largest |Δ loss| packed vs two-pass on the same batch: {dloss}. Peak memory: {memory}.", ""]
    return "\n".join(lines)


def main() -> None:
    """Measure, print and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny random LMs, few images (smoke run)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--reps", type=int, default=None, help="timed step repetitions (default 3, 2 with --quick)")
    parser.add_argument("--lms", nargs="+", default=list(SHAPES), choices=list(SHAPES), help="the LM shapes")
    parser.add_argument("--out", type=Path, default=None, help="markdown (default results-packed[-quick].md here)")
    args = parser.parse_args()
    args.reps = args.reps or (2 if args.quick else 3)
    out = args.out or Path(__file__).parent / ("results-packed-quick.md" if args.quick else "results-packed.md")
    dev = torch.device(args.device)
    flush_denormals_on_cpu(dev)
    args.machine = machine(dev)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_inputs(root, 1, 64 if args.quick else 1024, None, True)  # features and the training table
        for lm in args.lms:
            shape = SHAPES[lm][1]
            options = {**TINY_SHAPE, "architecture": shape.get("architecture", "llama")} if args.quick else shape
            build_tiny_causal_lm(root / lm, options)
            results[lm] = bench_lm(root, root / lm, args.reps, dev)
            print(f"{lm} done: {results[lm]}", file=sys.stderr)
    text = report(args, results, peak_memory(dev))
    with atomic_path(out) as tmp_out:
        tmp_out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
