"""Fused vs unfused projector training on the default's shapes (issue 19).

G runs of one group (same features, LM, init, settings; different rows and seeds, as the conditions
of one seed) trained two ways, side by side in one process:

- step: one fused step (`taxvlm.training.objective.fused_batch_losses`: the G batches stacked into one LM
  forward/backward, then each member's clip + AdamW) vs G unfused steps (`batch_loss` per member, as
  `train_projector` runs them), interleaved rep by rep, medians; plus the largest |Δ loss| between
  the two on the same batches;
- end to end: `train_projectors` on the G members vs G calls of `train_projector` (each loads the LM
  and the features once), wall time of short runs, peak resident memory of each way;
- memory: `taxvlm.training.memory`'s activation estimate (what `training.fuse_memory_gib` sizes sub-stacks
  by) vs the measured peak of one fused forward+backward of G = 1, 2, 4 members, above the memory
  held before it: on a GPU torch's allocator peak; on a CPU the kernel's resident high-water mark
  (VmHWM, reset through /proc/self/clear_refs after `malloc_trim` returned freed heap to the system).

Shapes (the embedded default, config/config.yaml): SmolLM2-135M (`--models DIR` with
`lms/smollm2_135m`, else its architecture with random weights and a small tokenizer, which changes
only the embedding and the LM head at the answer positions), pooled EfficientNet-Lite0 features
(1280-d) through the `mlp` projector to 4 prefix tokens, batch 16, `rows` batching. On a CPU the step
is compute-bound, so the ratio is expected near 1; on a GPU stacking removes launches.

Run: `.venv/bin/python perf/fused.py [--quick] [--device cpu|cuda] [--groups G] [--reps N]
[--steps S] [--models DIR] [--out FILE]`; `make perf` runs it after `perf/run.py`.
"""

from __future__ import annotations

import argparse
import ctypes
import platform
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
from taxvlm.training.memory import member_activation_bytes, peak_memory
from taxvlm.models.lms import build_prompt, load_lm
from taxvlm.models.projector import build_projector
from taxvlm.settings.models import EncoderSpec, LMSpec
from taxvlm.settings.schema import fill_defaults
from taxvlm.settings.training import TrainingSpec
from taxvlm.specs import FrozenLM, TrainingSetup
from taxvlm.training.loop import epoch_order, Member, SharedFiles, train_projector, train_projectors
from taxvlm.training.objective import batch_loss, fused_batch_losses

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_SHAPE = {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                 "intermediate_size": 1536, "tie_word_embeddings": True, "max_position_embeddings": 2048,
                 "seed": 0}  # fmt: skip  # SmolLM2-135M's config.json
TINY_SHAPE = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "seed": 0}
TRAINING = {"projector": "mlp", "prefix_tokens": 4, "feature_norm": "standardize", "lr": 1e-2, "weight_decay": 0.0,
            "warmup_fraction": 0.03, "batch_size": 16, "grad_clip": 1.0, "checkpoint_every": 10_000, "val_every": 0,
            "eval_every": 0, "eval_every_unit": "epochs", "batching": "rows",
            "compile": "none"}  # fmt: skip  # config/config.yaml
ENCODER = {"source": "timm", "layer": "final", "features": "pooled"}
NAMES = ["cat", "dog", "owl", "duck", "apple", "banana", "car", "boat", "chair", "table"]
D_VIS, ROWS_PER_IMAGE = 1280, 5
MEMORY_SIZES = [1, 2, 4]  # G of the estimate-vs-measured table


def frozen_lm(lm_dir: Path) -> FrozenLM:
    """The pretrained LM in `lm_dir`, its spec completed by the schema's defaults as the workflow's is."""
    return FrozenLM(LMSpec.from_config({"source": "hf"}), lm_dir, "pretrained")


def training_setup(lm_dir: Path, training: dict) -> TrainingSetup:
    encoder = EncoderSpec.from_config(fill_defaults(ENCODER, "encoders", "*"))
    return TrainingSetup(frozen_lm(lm_dir), encoder, TrainingSpec.from_config(training), "yesno")


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
    model, tok = load_lm(frozen_lm(lm_dir), dev)
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
    spec, files = training_setup(lm_dir, training), SharedFiles(root / "features.pt")
    t0 = time.perf_counter()
    train_projectors(spec, files, members, str(dev))
    fused = time.perf_counter() - t0
    t0 = time.perf_counter()
    for m in members:
        alone = Member(m.train_tsv, m.seed, root / "alone" / str(m.seed), root / "ckpt" / f"u{m.seed}.pt")
        train_projector(spec, files, alone, device=str(dev))
    return {"fused": fused, "unfused": time.perf_counter() - t0}


def _resident_kib(field: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def peak_above_baseline(fn: Callable[[], None], dev: torch.device) -> int:
    """Bytes at the peak of `fn()` above what was held before it (module docstring: memory)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        fn()
        torch.cuda.synchronize(dev)
        return torch.cuda.max_memory_allocated(dev) - before
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts at the current RSS
    before = _resident_kib("VmRSS")
    fn()
    return (_resident_kib("VmHWM") - before) * 1024


def bench_memory(lm_dir: Path, root: Path, sizes: list[int], dev: torch.device) -> list[dict[str, float]]:
    """Per G in `sizes`: the estimate of G members' activations and the measured peak of their fused
    forward+backward (the projectors' gradients allocated by a warm-up step, kept at zero)."""
    model, head, setup = step_members(lm_dir, root, max(sizes), dev)
    feats, members = setup["feats"], setup["members"]

    def step(g: int) -> None:
        stack = members[:g]
        out = fused_batch_losses(model, head, [m["projector"] for m in stack], feats, [m["idx"] for m in stack],
                                 [m["q"] for m in stack], [m["a"] for m in stack])  # fmt: skip
        torch.autograd.backward(out)
        for m in stack:
            m["optimizer"].zero_grad(set_to_none=False)

    step(max(sizes))
    rows = [(q, a) for m in members for q, a in zip(m["q"], m["a"])]
    length = len(head) + TRAINING["prefix_tokens"] + max(len(q) + len(a) for q, a in rows) - 1
    answers = max(sum(len(a) for a in m["a"]) for m in members)
    dtype_bytes = next(model.parameters()).element_size()
    member = member_activation_bytes(model.config, dtype_bytes, TRAINING["batch_size"], length, answers)
    return [{"g": g, "estimate": g * member, "measured": peak_above_baseline(lambda: step(g), dev)} for g in sizes]


def memory_table(rows: list[dict[str, float]], dev: torch.device) -> list[str]:
    """Markdown lines: estimate vs measured peak per G."""
    what = "allocator peak on the GPU" if dev.type == "cuda" else "resident high-water mark (VmHWM)"
    lines = ["", f"Activation memory of one fused forward+backward: `taxvlm.training.memory`'s estimate (what "
             f"`training.fuse_memory_gib` sizes sub-stacks by) vs the measured {what} above the memory held before it.",
             "", "| G | estimated (MiB) | measured (MiB) | measured / estimated |", "|---|---|---|---|"]  # fmt: skip
    for row in rows:
        ratio = row["measured"] / row["estimate"]
        lines.append(f"| {row['g']} | {row['estimate'] / 2**20:.1f} | {row['measured'] / 2**20:.1f} | {ratio:.2f} |")
    return lines


def report(
    args: argparse.Namespace, what: str, step: dict[str, float], e2e: dict[str, float], memory: str,
    activations: list[dict[str, float]],
) -> str:  # fmt: skip
    """The markdown results file (numbers only from this run)."""
    g, bs = args.groups, TRAINING["batch_size"]
    return "\n".join([
        "# Fused vs unfused projector training (issue 19)", "",
        f"Generated by `python perf/fused.py{' --quick' if args.quick else ''} --device {args.device} "
        f"--groups {g} --reps {args.reps} --steps {args.steps}` (`make perf`: the defaults); do not edit by hand.", "",
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
        *memory_table(activations, torch.device(args.device)), "",
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
    parser.add_argument("--out", type=Path, default=None, help="markdown (default perf/results-fused[-quick].md)")
    args = parser.parse_args()
    args.reps = args.reps or (2 if args.quick else 3)
    args.steps = args.steps or (3 if args.quick else 8)
    out = args.out or Path(__file__).parent / ("results-fused-quick.md" if args.quick else "results-fused.md")
    dev = torch.device(args.device)
    flush_denormals_on_cpu(dev)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lm_dir, what = build_inputs(root, max(args.groups, *MEMORY_SIZES), 64 if args.quick else 1024, args.models, args.quick)
        step = bench_step(lm_dir, root, args.groups, args.reps, dev)
        print(f"step done: {step}", file=sys.stderr)
        e2e = bench_end_to_end(lm_dir, root, args.groups, args.steps, dev)
        print(f"end to end done: {e2e}", file=sys.stderr)
        activations = bench_memory(lm_dir, root, MEMORY_SIZES, dev)
        print(f"memory done: {activations}", file=sys.stderr)
    text = report(args, what, step, e2e, peak_memory(dev), activations)
    with atomic_path(out) as tmp_out:
        tmp_out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
