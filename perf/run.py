"""Benchmark taxvlm's fast paths against the plain ways of doing the same work.

Measured side by side in one process, on the same models and data, baselines and ours interleaved
rep by rep (so background load hits both alike), medians reported:

- evaluation: `score_questions` (image-prefix KV reuse, logits at the answer position only) vs a
  per-question `generate` scorer (what the paper's reference code does) and vs
  `score_questions_reference` (one plain forward per question); plus max |Δ log P| between them.
- training: our step (`batch_loss`: cached features, each image's prefix once per batch, logits at
  the answer positions) with `rows` and `images` batching vs an HF-LLaVA-style step (encoder on the
  pixels every step, full-sequence logits, CE with the prompt masked to -100), on the default config
  (4 prefix tokens) and in the paper regime (256 DINOv2-S patch tokens).
- utilisation: analytic FLOPs of our step / time, as a fraction of a measured matmul rate (MFU).
- scaling: our step time vs image tokens (token projector on synthetic features), batch size and batching.
- projection: the paper grid's cost on one H100 from analytic FLOPs and a stated MFU assumption.
- `--paper-lms` (for a GPU): the same training and evaluation comparisons for the paper's LMs at their
  published shapes (random weights) with DINOv2-L/14-shaped features, and the grid of
  `config/things.yaml` projected from those measured rates.

Run: `.venv/bin/python perf/run.py [--quick] [--device cpu|cuda] [--random-weights] [--paper-lms]
[--models DIR] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from harness import machine
from measure import bench_eval, bench_paper_lms, bench_scaling, bench_train, eval_many_tokens
from projection import project_grid
from report import Results, markdown
from taxvlm.devices import flush_denormals_on_cpu
from workload import BATCH, ROOT, build_setup, token_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny random models, a few iterations (smoke run)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=None, help="markdown file (default perf/results[-quick].md)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per measurement (after 1 warm-up)")
    parser.add_argument("--models", type=Path, default=ROOT / "resources/models", help="folder of the converted models")
    parser.add_argument("--random-weights", action="store_true",
                        help="the models' shapes and tokenizer, random weights (for a machine the weights can't reach)")
    parser.add_argument("--paper-lms", action="store_true",
                        help="also time the paper's LMs (Qwen3-0.6B/1.7B/8B, Llama-3.2-1B shapes, random weights) with "
                             "DINOv2-L tokens, and project config/things.yaml from those measurements (for a GPU)")
    args = parser.parse_args()
    out = args.out or Path(__file__).parent / ("results-quick.md" if args.quick else "results.md")
    reps = args.reps or (2 if args.quick else 3)
    dev = torch.device(args.device)
    flush_denormals_on_cpu(dev)  # as the pipeline runs: subnormal softmax tails slow CPU matmuls several-fold
    torch.set_grad_enabled(True)
    t_start = time.perf_counter()
    machine_before = machine(dev)
    s, what = build_setup(args.quick, args.device, args.models, args.random_weights)
    print(f"models/data: {what}", file=sys.stderr)
    ev = bench_eval(s, reps)
    print(f"eval done: {ev}", file=sys.stderr)
    ev64 = eval_many_tokens(s, reps, 16 if args.quick else 64, 4)
    print(f"eval (many image tokens) done: {ev64}", file=sys.stderr)
    tr = bench_train(s, reps, batch_size=BATCH)
    print(f"train done: {tr}", file=sys.stderr)
    ts, token_what = token_setup(s, args.quick, args.models, args.random_weights)
    token_reps = 1 if dev.type == "cpu" and not args.quick else reps  # minutes per baseline step on a CPU
    tt = bench_train(ts, token_reps, batch_size=BATCH, with_matmul=False)
    print(f"train (paper regime) done: {tt}", file=sys.stderr)
    tokens, batches = ([1, 16], [4]) if args.quick else ([1, 16, 64, 256], [4, 16])
    sc = bench_scaling(s, tokens, batches, reps=1)
    mfu = tr["achieved_rows"] / tr["peak"]
    grid_text, hours = project_grid(mfu)
    paper = bench_paper_lms(ts, reps, args.quick) if args.paper_lms else {}
    results = Results(
        machine_before=machine_before, machine_after=machine(s.dev), device=dev.type, what=what,
        token_what=token_what, notes=s.notes, reps=reps, token_reps=token_reps,
        seconds=time.perf_counter() - t_start, ev=ev, ev64=ev64, tr=tr, tt=tt, sc=sc,
        train_rows=len(s.train_rows), train_images=len({r[0] for r in s.train_rows}),
        grid_text=grid_text, hours=hours, paper=paper,
    )  # fmt: skip
    text = markdown(results)
    print(text)
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
