"""Fused vs unfused projector training on the default's shapes (issue 19).

G runs of one group (same features, LM, init, settings; different rows and seeds, as the conditions
of one seed) trained two ways, side by side in one process:

- step: one fused step (`taxvlm.train.fused_batch_losses`: the G batches stacked into one LM
  forward/backward, then each member's clip + AdamW) vs G unfused steps (`batch_loss` per member, as
  `train_projector` runs them), interleaved rep by rep, medians; plus the largest |Δ loss| between
  the two on the same batches;
- end to end: `train_projectors` on the G members vs G calls of `train_projector` (each loads the LM
  and the features once), wall time of short runs, peak resident memory of each way.

Shapes (the embedded default, config/config.yaml): SmolLM2-135M (`--models DIR` with
`lms/smollm2_135m`, else its architecture with random weights and a small tokenizer, which changes
only the embedding and the LM head at the answer positions), pooled EfficientNet-Lite0 features
(1280-d) through the `mlp` projector to 4 prefix tokens, batch 16, `rows` batching. On a CPU the step
is compute-bound, so the ratio is expected near 1; on a GPU stacking removes launches.

Run: `.venv/bin/python benchmarks/fused.py [--quick] [--device cpu|cuda] [--groups G] [--reps N]
[--steps S] [--models DIR] [--out FILE]`; `make bench` runs it after `benchmarks/run.py`.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from taxvlm.assets.tiny import build_tiny_causal_lm
from taxvlm.devices import flush_denormals_on_cpu
from taxvlm.io import atomic_path, write_tsv
from taxvlm.models.lms import build_prompt, load_lm
from taxvlm.models.projector import build_projector
from taxvlm.train import Member, batch_loss, epoch_order, fused_batch_losses, train_projector, train_projectors

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_SHAPE = {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                 "intermediate_size": 1536, "tie_word_embeddings": True, "max_position_embeddings": 2048,
                 "seed": 0}  # fmt: skip  # SmolLM2-135M's config.json
TINY_SHAPE = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "seed": 0}
TRAINING = {"projector": "mlp", "prefix_tokens": 4, "feature_norm": "standardize", "lr": 1e-2, "weight_decay": 0.0,
            "warmup_fraction": 0.03, "batch_size": 16, "grad_clip": 1.0, "checkpoint_every": 10_000, "val_every": 0,
            "eval_every": 0, "eval_every_unit": "epochs", "batching": "rows",
            "compile": "none"}  # fmt: skip  # config/config.yaml
ENCODER = {"source": "timm", "features": "pooled"}
LM_SPEC = {"source": "hf", "chat_template": False}
NAMES = ["cat", "dog", "owl", "duck", "apple", "banana", "car", "boat", "chair", "table"]
D_VIS, ROWS_PER_IMAGE = 1280, 5


def build_inputs(root: Path, groups: int, n_images: int, models: Path | None, quick: bool) -> tuple[Path, str]:
    """The LM folder (real SmolLM2-135M when `models` has it), a feature cache and one training table
    per member (each drops a different tenth of the rows, like the conditions of a grid)."""
    real = models / "lms/smollm2_135m" if models else None
    if real is not None and (real / "config.json").exists():
        lm_dir, what = real, f"SmolLM2-135M from {real}"
    else:
        lm_dir = root / "lm"
        build_tiny_causal_lm(lm_dir, TINY_SHAPE if quick else SMOLLM2_SHAPE)
        what = "tiny random LM" if quick else "SmolLM2-135M's architecture, random weights, small tokenizer"
    gen = torch.Generator().manual_seed(0)
    image_ids = [f"img{i:05d}" for i in range(n_images)]
    pooled = torch.randn(n_images, D_VIS, generator=gen).half()
    with atomic_path(root / "features.pt") as tmp:
        torch.save({"image_ids": image_ids, "tokens": pooled[:, None], "pooled": pooled, "meta": {}}, tmp)
    rows = pd.DataFrame(
        {"row_id": f"{image}:{k}", "image_id": image, "answer": "Yes" if (i + k) % 2 else "No",
         "text": f"Is there a {NAMES[(i + k) % len(NAMES)]} in this image?"}
        for i, image in enumerate(image_ids)
        for k in range(ROWS_PER_IMAGE)
    )  # fmt: skip
    for g in range(groups):
        write_tsv(rows[rows.index % 10 != g], root / f"train{g}.tsv")
    return lm_dir, what


def interleaved(contenders: dict[str, Callable[[], None]], reps: int, sync: Callable[[], None]) -> dict[str, float]:
    """Median seconds per call of each contender: one warm-up each, then alternating within every rep."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for rep in range(reps + 1):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            sync()
            if rep:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def step_members(lm_dir: Path, root: Path, groups: int, dev: torch.device) -> tuple[nn.Module, list[int], dict]:
    """The LM, the prompt head and, per member, a projector, its AdamW and its first `rows` batch."""
    model, tok = load_lm(LM_SPEC, lm_dir, "pretrained", 0, dev)
    prompt = build_prompt(tok)
    data = torch.load(root / "features.pt", weights_only=True)
    index = {image: i for i, image in enumerate(data["image_ids"])}
    members = []
    for g in range(groups):
        table = pd.read_csv(root / f"train{g}.tsv", sep="\t")
        idx = torch.tensor([index[i] for i in table["image_id"]])
        batch = epoch_order(idx, g, 0)[: TRAINING["batch_size"]].tolist()
        torch.manual_seed(g)
        spec = {**TRAINING, "features": "pooled"}
        projector = build_projector(spec, D_VIS, model.get_input_embeddings().embedding_dim).to(dev)
        members.append({
            "projector": projector, "optimizer": torch.optim.AdamW(projector.parameters(), lr=1e-4),
            "idx": idx[batch], "q": [prompt.question_ids(table["text"][i]) for i in batch],
            "a": [prompt.answers[table["answer"][i]] for i in batch],
        })  # fmt: skip
    return model, prompt.head, {"feats": data["pooled"], "members": members}


def bench_step(lm_dir: Path, root: Path, groups: int, reps: int, dev: torch.device) -> dict[str, float]:
    """One fused step of `groups` projectors vs as many unfused steps, on the same batches."""
    model, head, setup = step_members(lm_dir, root, groups, dev)
    feats, members = setup["feats"], setup["members"]
    losses: dict[str, list[float]] = {}

    def update() -> None:  # each member's clip + AdamW, as training runs them
        for m in members:
            nn.utils.clip_grad_norm_(m["projector"].parameters(), 1.0)
            m["optimizer"].step()
            m["optimizer"].zero_grad(set_to_none=True)

    def fused() -> None:
        out = fused_batch_losses(model, head, [m["projector"] for m in members], feats,
                                 [m["idx"] for m in members], [m["q"] for m in members], [m["a"] for m in members])  # fmt: skip
        losses["fused"] = [x.item() for x in out]
        torch.autograd.backward(out)
        update()

    def unfused() -> None:
        losses["unfused"] = []
        for m in members:
            loss = batch_loss(model, head, m["projector"], feats, m["idx"], m["q"], m["a"])
            losses["unfused"].append(loss.item())
            loss.backward()
        update()

    def agreement() -> float:
        """The two ways' losses on the same batches and projectors (lr 0 for this one call)."""
        for m in members:
            m["optimizer"].param_groups[0]["lr"] = 0.0
        fused()
        unfused()
        for m in members:
            m["optimizer"].param_groups[0]["lr"] = 1e-4
        return max(abs(a - b) for a, b in zip(losses["fused"], losses["unfused"]))

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = interleaved({"unfused": unfused, "fused": fused}, reps, sync)
    return {**times, "max_dloss": agreement()}


def bench_end_to_end(lm_dir: Path, root: Path, groups: int, steps: int, dev: torch.device) -> dict[str, float]:
    """Wall time of short runs (`steps` steps each): one fused job vs `groups` unfused ones."""
    n_rows = len(pd.read_csv(root / "train0.tsv", sep="\t"))
    training = {**TRAINING, "epochs": steps * TRAINING["batch_size"] / n_rows}
    members = [Member(root / f"train{g}.tsv", g, root / "fused" / str(g), root / "ckpt" / f"f{g}.pt")
               for g in range(groups)]  # fmt: skip
    t0 = time.perf_counter()
    train_projectors(root / "features.pt", LM_SPEC, lm_dir, ENCODER, "pretrained", training, members, str(dev))
    fused = time.perf_counter() - t0
    t0 = time.perf_counter()
    for m in members:
        train_projector(root / "features.pt", m.train_tsv, LM_SPEC, lm_dir, ENCODER, "pretrained", training, m.seed,
                        root / "alone" / str(m.seed), root / "ckpt" / f"u{m.seed}.pt", device=str(dev))  # fmt: skip
    return {"fused": fused, "unfused": time.perf_counter() - t0}


def peak_memory(dev: torch.device) -> str:
    """The process's peak: activations scale with G x batch, so this is what bounds G."""
    if dev.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB allocated on the GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB resident (the process's peak)"


def report(args: argparse.Namespace, what: str, step: dict[str, float], e2e: dict[str, float], memory: str) -> str:
    """The markdown results file (numbers only from this run)."""
    g, bs = args.groups, TRAINING["batch_size"]
    return "\n".join([
        "# Fused vs unfused projector training (issue 19)", "",
        f"Generated by `python benchmarks/fused.py{' --quick' if args.quick else ''} --device {args.device} "
        f"--groups {g} --reps {args.reps} --steps {args.steps}` (`make bench`: the defaults); do not edit by hand.", "",
        f"- machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"device {args.device}, torch {torch.__version__}",
        f"- LM: {what}; features: pooled {D_VIS}-d → mlp projector → 4 prefix tokens; batch {bs}, `rows` batching",
        f"- G = {g} members (different rows and seeds); {args.reps} timed reps after a warm-up, interleaved; medians",
        "", "| measurement | unfused (G separate) | fused (one stack) | ratio unfused / fused |", "|---|---|---|---|",
        f"| one training step of all {g} runs (s) | {step['unfused']:.3f} | {step['fused']:.3f} "
        f"| {step['unfused'] / step['fused']:.2f} |",
        f"| rows per second | {g * bs / step['unfused']:.1f} | {g * bs / step['fused']:.1f} | |",
        f"| {g} runs of {args.steps} steps end to end, LM loads included (s) | {e2e['unfused']:.1f} | "
        f"{e2e['fused']:.1f} | {e2e['unfused'] / e2e['fused']:.2f} |",
        "", f"Largest |Δ loss| fused vs unfused on the same batches: {step['max_dloss']:.2e}. Peak memory: {memory}.",
        "",
    ])  # fmt: skip


def main() -> None:
    """Measure, print and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny random LM, few images (smoke run)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--groups", type=int, default=4, help="G, the members of the fused group")
    parser.add_argument("--reps", type=int, default=None, help="timed step repetitions (default 3, 2 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="steps per run end to end (default 8, 3 with --quick)")
    parser.add_argument("--models", type=Path, default=ROOT / "resources/models", help="folder of the converted models")
    parser.add_argument("--out", type=Path, default=None, help="markdown (default benchmarks/results-fused[-quick].md)")
    args = parser.parse_args()
    args.reps = args.reps or (2 if args.quick else 3)
    args.steps = args.steps or (3 if args.quick else 8)
    out = args.out or Path(__file__).parent / ("results-fused-quick.md" if args.quick else "results-fused.md")
    dev = torch.device(args.device)
    flush_denormals_on_cpu(dev)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lm_dir, what = build_inputs(root, args.groups, 64 if args.quick else 1024, args.models, args.quick)
        step = bench_step(lm_dir, root, args.groups, args.reps, dev)
        print(f"step done: {step}", file=sys.stderr)
        e2e = bench_end_to_end(lm_dir, root, args.groups, args.steps, dev)
        print(f"end to end done: {e2e}", file=sys.stderr)
    text = report(args, what, step, e2e, peak_memory(dev))
    with atomic_path(out) as tmp_out:
        tmp_out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
