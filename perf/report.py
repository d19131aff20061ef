"""The benchmark's markdown: the main table of ratios, utilisation, scaling, the grid projections and
(on a GPU) the paper LMs' tables, from what `measure` returned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness import MATMUL_N
from projection import project_measured
from workload import BATCH, PAPER_LMS


@dataclass
class Results:
    """Everything one `run.py` invocation measured, and where."""

    machine_before: str
    machine_after: str
    device: str  # cpu | cuda
    what: str  # the models and data of the default-config rows
    token_what: str  # the paper-regime encoder
    notes: list[str]
    reps: int
    token_reps: int
    seconds: float
    ev: dict[str, Any]  # bench_eval
    ev64: dict[str, Any]  # eval_many_tokens
    tr: dict[str, Any]  # bench_train, default config
    tt: dict[str, Any]  # bench_train, paper regime
    sc: list[dict[str, Any]]  # bench_scaling
    train_rows: int
    train_images: int
    grid_text: str
    hours: list[tuple[str, float, float]]
    paper: dict[str, dict[str, Any]]


def _train_rows(tr: dict[str, Any], label: str) -> list[str]:
    """Table rows of one `bench_train` result: ours with each batching vs the LLaVA-style step."""
    llava = tr["sps"]["llava"]
    return [
        f"| train samples/s, {label}, `batching: rows`, vs HF-LLaVA-style step (batch {tr['batch']}) | {llava:.2f} | "
        f"{tr['sps']['ours_rows']:.2f} | **{tr['sps']['ours_rows'] / llava:.2f}×** | ≥ 3× |",
        f"| same, `batching: images` ({tr['images_per_batch']:.1f} images per batch, {tr['rows_per_image']:.1f} rows "
        f"per image) | {llava:.2f} | {tr['sps']['ours_images']:.2f} | "
        f"**{tr['sps']['ours_images'] / llava:.2f}×** | ≥ 3× |",
    ]


def paper_markdown(paper: dict[str, dict[str, Any]], where: str) -> list[str]:
    """The paper-LM tables (`bench_paper_lms`) and the grid projected from them."""
    lines = [
        f"## The paper's LMs on this machine ({where})",
        "",
        "Random weights at each LM's published shape (bf16 on a GPU), SmolLM2's tokenizer for the prompts; DINOv2-L/14 "
        "at the paper's shape (random weights, 256 patch tokens × 1024-d at 224 px), per-token `mlp` projector; the "
        f"same rows as above; batch {BATCH}. Δ = max |Δ log P(Yes/No)| of ours vs `generate`; losses: ours vs the "
        "HF `labels=` loss on the same batch.",
        "",
        "| LM | train samples/s: LLaVA-style / ours `rows` / ours `images` | ratios | MFU `rows` / `images` | eval "
        "questions/s: `generate` / ours | ratio | Δ | losses | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in paper.items():
        name = PAPER_LMS[key][0]
        if "error" in r:
            lines.append(f"| {name} | {r['error']} | | | | | | | |")
            continue
        tr, ev = r["train"], r["eval"]
        sps, qps = tr["sps"], ev["qps"]
        memory = f"{r['max_memory_gib']:.1f}" if "max_memory_gib" in r else "—"
        lines.append(
            f"| {name} | {sps['llava']:.1f} / {sps['ours_rows']:.1f} / {sps['ours_images']:.1f} | "
            f"**{sps['ours_rows'] / sps['llava']:.2f}×** / **{sps['ours_images'] / sps['llava']:.2f}×** | "
            f"{tr['achieved_rows'] / tr['peak']:.1%} / {tr['achieved_images'] / tr['peak']:.1%} | "
            f"{qps['generate']:.1f} / {qps['ours']:.1f} | **{qps['ours'] / qps['generate']:.1f}×** | "
            f"{ev['diff_generate']:.1e} | {tr['loss_ours']:.4f} / {tr['loss_llava']:.4f} | {memory} |"
        )
    peaks = [r["train"]["peak"] for r in paper.values() if "train" in r]
    peak_text = f"{min(peaks) / 1e12:.1f}–{max(peaks) / 1e12:.1f} TFLOP/s" if peaks else "none measured"
    text, table = project_measured(paper)
    total = [sum(row[i] for row in table) for i in (1, 2, 3, 4)]
    lines += [
        "",
        f"MFU against the matmul rate measured in each LM's interleaving ({peak_text}; bf16 {MATMUL_N['cuda']}³ "
        f"on a GPU, fp32 {MATMUL_N['cpu']}³ on a CPU).",
        "",
        "## Projected cost of the paper grid on this machine, from the measured rates",
        "",
        text,
        "",
        "| LM | runs | LLaVA-style + `generate` | ours, `batching: rows` | ours, `batching: images` |",
        "|---|---|---|---|---|",
        *[f"| {name} | {n} | {b:,.1f} h | {r:,.1f} h | {g:,.1f} h |" for name, n, b, r, g in table],
        f"| **all** | {total[0]} | **{total[1]:,.1f} h** | **{total[2]:,.1f} h** | **{total[3]:,.1f} h** |",
        "",
    ]
    return lines



def markdown(r: Results) -> str:
    """The whole results file."""
    q, q64 = r.ev["qps"], r.ev64["qps"]
    md = [
        "# taxvlm benchmark",
        "",
        f"- machine: {r.machine_before} (at start); {r.machine_after} (at end)",
        f"- models/data: {r.what}; paper regime: the same LM with {r.token_what}",
        *[f"- NOTE: {n}" for n in r.notes],
        "- CPU denormals flushed (`flush_denormals_on_cpu`, as the pipeline runs) for every contender",
        f"- {r.reps} timed repetitions per row after one warm-up ({r.token_reps} in the paper-regime training rows), "
        f"baselines and ours interleaved; medians; total wall time {r.seconds:.0f} s",
        "",
        "| measurement | baseline | ours | ratio (ours / baseline) | target |",
        "|---|---|---|---|---|",
        f"| eval questions/s vs per-question `generate` | {q['generate']:.1f} | {q['ours']:.1f} | **{q['ours'] / q['generate']:.1f}×** | ≥ 20× |",
        f"| eval questions/s vs `score_questions_reference` | {q['reference']:.1f} | {q['ours']:.1f} | {q['ours'] / q['reference']:.1f}× | — |",
        f"| same, {r.ev64['tokens']} image tokens (synthetic features, token projector) vs `generate` | {q64['generate']:.1f} | "
        f"{q64['ours']:.1f} | **{q64['ours'] / q64['generate']:.1f}×** | ≥ 20× |",
        f"| same, {r.ev64['tokens']} image tokens vs `score_questions_reference` | {q64['reference']:.1f} | {q64['ours']:.1f} | "
        f"{q64['ours'] / q64['reference']:.1f}× | — |",
        *_train_rows(r.tr, f"default config ({r.tr['image_tokens']} prefix tokens from a pooled feature)"),
        *_train_rows(r.tt, f"paper regime ({r.tt['image_tokens']} patch tokens)"),
        "",
        f"- eval set: {r.ev['n']} questions on {r.ev['images']} images; max |Δ log P(Yes/No)| ours vs generate "
        f"{r.ev['diff_generate']:.2e}, ours vs reference {r.ev['diff_reference']:.2e}; with {r.ev64['tokens']} image tokens: "
        f"{r.ev64['n']} questions on {r.ev64['images']} images, max |Δ| vs generate {r.ev64['diff_generate']:.2e}, "
        f"vs reference {r.ev64['diff_reference']:.2e}",
        f"- training rows: all {r.train_rows} rows of {r.train_images} training images, in "
        "full batches ordered as `train_projector` orders them (`epoch_order`); the baseline runs the image-grouped "
        "batches (each of its rows is a separate full sequence, so grouping changes nothing for it)",
        f"- same batch, same projector: loss ours {r.tr['loss_ours']:.6f} vs HF `labels=` loss {r.tr['loss_llava']:.6f}; "
        f"paper regime {r.tt['loss_ours']:.6f} vs {r.tt['loss_llava']:.6f} (ours reads the fp16 feature cache; the "
        "baseline re-encodes the pixels in fp32)",
        "",
        "## Utilisation (our training step, default config)",
        "",
        "FLOPs: forward = 2·N_nonembed·B·S + causal attention 4·L·B·S·(P + S/2)·H·d_head + LM head 2·d·V at the "
        "answer positions only, counted for what the step runs: one prefix `[head][image][common question "
        "tokens]` (length P) per distinct image in the batch, then each row's padded suffix (length S) attending "
        "to it; training = forward + backward for input gradients only (frozen LM, no weight gradients): 2× the "
        "linear and LM-head FLOPs, 3× the attention FLOPs. Projector, norms, RoPE, softmax, optimizer ignored.",
        "",
        "| quantity | `batching: rows` | `batching: images` |",
        "|---|---|---|",
        f"| analytic FLOPs per step (batch {r.tr['batch']}) | {r.tr['flops_rows'] / 1e9:.1f} GFLOP | "
        f"{r.tr['flops_images'] / 1e9:.1f} GFLOP |",
        f"| achieved | {r.tr['achieved_rows'] / 1e9:.1f} GFLOP/s | {r.tr['achieved_images'] / 1e9:.1f} GFLOP/s |",
        f"| **MFU** (achieved / median matmul rate) | **{r.tr['achieved_rows'] / r.tr['peak']:.1%}** | **{r.tr['achieved_images'] / r.tr['peak']:.1%}** |",
        "",
        f"Matmul rate ({r.tr['peak_key']}, {MATMUL_N[r.device]}³ `torch.mm`, same interleaving): median "
        f"{r.tr['peak'] / 1e9:,.1f}, best {r.tr['peak_best'] / 1e9:,.1f} GFLOP/s.",
        "",
        "## Scaling of our training step (token projector on synthetic features; 1 timed rep each, after one "
        "warm-up step of the first configuration; on a CPU, configurations above 1024 image tokens per step are "
        "skipped)",
        "",
        "| image tokens | batch | s/step rows | s/step images (images in batch) | ms/sample rows | ms/sample images "
        "| images speed-up | MFU rows | MFU images |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {row['tokens']} | {row['batch']} | {row['rows']['seconds']:.3f} | {row['images']['seconds']:.3f} "
            f"({row['n_images']}) | {1000 * row['rows']['seconds'] / row['batch']:.1f} | "
            f"{1000 * row['images']['seconds'] / row['batch']:.1f} | "
            f"{row['rows']['seconds'] / row['images']['seconds']:.2f}× | "
            f"{row['rows']['flops'] / row['rows']['seconds'] / r.tr['peak']:.1%} | "
            f"{row['images']['flops'] / row['images']['seconds'] / r.tr['peak']:.1%} |"
            for row in r.sc
        ],
        "",
        "## Projected cost of the paper grid on one H100 (analytic, not measured)",
        "",
        r.grid_text,
        "",
        "| MFU assumption | H100 hours, `batching: rows` | H100 hours, `batching: images` |",
        "|---|---|---|",
        *[f"| {label} | {h:,.0f} h ({h / 24:.1f} days) | {g:,.0f} h ({g / 24:.1f} days) |" for label, h, g in r.hours],
        "",
        *(paper_markdown(r.paper, r.machine_after) if r.paper else []),
    ]
    return "\n".join(md)
