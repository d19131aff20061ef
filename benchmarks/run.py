"""Benchmark taxvlm's fast paths against the plain ways of doing the same work (issue 7).

Measured side by side in one process, on the same models and data, baselines and ours interleaved
rep by rep (so background load hits both alike), medians reported:

- evaluation: `score_questions` (image-prefix KV reuse, logits at the answer position only) vs a
  per-question `generate` scorer (what the paper's reference code does) and vs
  `score_questions_reference` (one plain forward per question); plus max |Δ log P| between them.
- training: our step (cached features → projector → `answer_loss`) vs an HF-LLaVA-style step
  (encoder on the pixels every step, full-sequence logits, CE with the prompt masked to -100).
- utilisation: analytic FLOPs of our step / time, as a fraction of a measured matmul rate (MFU).
- scaling: our step time vs image tokens (token projector on synthetic features) and batch size.
- projection: the paper grid's cost on one H100 from analytic FLOPs and a stated MFU assumption.

Run: `.venv/bin/python benchmarks/run.py [--quick] [--device cpu|cuda] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from taxvlm.evaluate import score_questions, score_questions_reference
from taxvlm.io import read_tsv
from taxvlm.models.encoders import Encoder, load_encoder
from taxvlm.models.lms import PromptFormat, build_prompt, load_lm
from taxvlm.models.projector import build_projector
from taxvlm.train import answer_loss

ROOT = Path(__file__).resolve().parents[1]
LM_DIR = ROOT / "resources/models/lms/smollm2_135m"
ENC_DIR = ROOT / "resources/models/encoders/efficientnet_lite0"
DATA = ROOT / "results/data/images.tsv"
COND = ROOT / "results/conditions/none/original"
REAL_ENCODER = {"source": "timm", "name": "tf_efficientnet_lite0", "features": "pooled", "image_size": 224}
TINY_ENCODER = {"source": "timm", "name": "test_efficientnet", "features": "pooled", "image_size": 64}
TINY_LM = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "intermediate_size": 128, "seed": 0}  # fmt: skip
PROJECTOR = {"projector": "mlp", "prefix_tokens": 4, "features": "pooled"}  # as config/config.yaml
H100_BF16_PEAK = 989e12  # dense, no sparsity (SXM datasheet)


# ----------------------------------------------------------------------------- setup


@dataclass
class Setup:
    """Models and data every measurement shares."""

    model: nn.Module
    prompt: PromptFormat
    encoder: Encoder
    pixels: torch.Tensor  # [N, 3, H, W], preprocessed once (the baseline re-encodes them every step)
    feats: torch.Tensor  # [N, D] fp16, the feature cache our path reads
    eval_rows: list[tuple[int, str]]  # (image row, question)
    train_rows: list[tuple[int, str, str]]  # (image row, question, answer)
    dev: torch.device
    notes: list[str] = field(default_factory=list)


def _rows(quick: bool) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str, str]], str]:
    """Image paths, eval (image_id, text) and train (image_id, text, answer) rows: the pipeline's
    tables when they exist, else synthetic questions about noise images."""
    n_eval_images, n_train = (4, 32) if quick else (10, 64)
    if DATA.exists() and (COND / "train.tsv").exists():
        images = read_tsv(DATA).set_index("image_id")["path"]
        test = [read_tsv(COND / f"test_{s}.tsv") for s in ("seen", "unseen", "leaf")]
        test = [t for t in test if not t.empty]
        import pandas as pd

        test = pd.concat(test).sort_values(["image_id", "row_id"])
        ids = sorted(set(test["image_id"]))
        chosen = ids[:: max(1, len(ids) // n_eval_images)][:n_eval_images]
        test = test[test["image_id"].isin(chosen)]
        train = read_tsv(COND / "train.tsv").sample(n=n_train, random_state=0)
        eval_rows = list(zip(test["image_id"], test["text"]))
        train_rows = list(zip(train["image_id"], train["text"], train["answer"]))
        needed = sorted(set(test["image_id"]) | set(train["image_id"]))
        paths = {i: str(ROOT / images[i]) for i in needed}
        source = f"pipeline tables ({COND.relative_to(ROOT)}; {len(chosen)} test images, all their questions)"
        return [paths[i] for i in needed], _index(eval_rows, needed), _index(train_rows, needed), source
    nouns = "owl cat dog bird fish apple car chair hammer guitar animal food tool vehicle".split()
    n_img = 16
    gen = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="taxvlm-bench-img-"))
    paths = []
    for i in range(n_img):
        path = tmp / f"{i}.png"
        Image.fromarray(gen.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    q = [f"Is there a {n} in this image?" for n in nouns]
    eval_rows = [(f"{i}", t) for i in range(n_eval_images) for t in q]
    train_rows = [(f"{i % n_img}", q[i % len(q)], "Yes" if i % 2 else "No") for i in range(n_train)]
    ids = [str(i) for i in range(n_img)]
    return paths, _index(eval_rows, ids), _index(train_rows, ids), "synthetic noise images and questions"


def _index(rows: list[tuple[Any, ...]], ids: list[str]) -> list[tuple[Any, ...]]:
    pos = {i: n for n, i in enumerate(ids)}
    return [(pos[r[0]], *r[1:]) for r in rows]


def build_setup(quick: bool, device: str) -> tuple[Setup, str]:
    """Real SmolLM2-135M + EfficientNet-Lite0 unless `quick` or they are missing (then tiny random ones)."""
    dev = torch.device(device)
    notes = []
    real = not quick and (LM_DIR / "model.safetensors").exists() and (ENC_DIR / "model.safetensors").exists()
    if real:
        lm_dir, enc_dir, enc_spec = LM_DIR, ENC_DIR, REAL_ENCODER
        models = "SmolLM2-135M (30 layers, d=576) + EfficientNet-Lite0 (pooled, 1280-d → 4 prefix tokens)"
    else:
        from taxvlm.assets.tiny import build_tiny_causal_lm, build_tiny_timm

        tmp = Path(tempfile.mkdtemp(prefix="taxvlm-bench-"))
        build_tiny_causal_lm(tmp / "lm", TINY_LM)
        build_tiny_timm(tmp / "enc", {"name": TINY_ENCODER["name"], "seed": 0})
        lm_dir, enc_dir, enc_spec = tmp / "lm", tmp / "enc", TINY_ENCODER
        models = "TINY random models (Llama 2×64, timm test_efficientnet @64 px)"
        if not quick:
            notes.append("real models missing: fell back to tiny random models")
    model, tokenizer = load_lm({"source": "hf"}, lm_dir, "pretrained", 0, dev)
    prompt = build_prompt(tokenizer, chat_template=False)
    encoder = load_encoder(enc_spec, enc_dir, dev)
    paths, eval_rows, train_rows, source = _rows(quick)
    pixels = torch.stack([encoder.preprocess(Image.open(p).convert("RGB")) for p in paths])
    with torch.inference_mode():
        feats = torch.cat(
            [encoder.encode(pixels[i : i + 16].to(dev))[1].half().cpu() for i in range(0, len(pixels), 16)]
        )
    setup = Setup(model, prompt, encoder, pixels, feats, eval_rows, train_rows, dev, notes)
    return setup, f"{models}; data: {source}"


# ----------------------------------------------------------------------------- timing


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    fns: dict[str, Callable[[], Any]], reps: int, dev: torch.device, warmup: bool = True
) -> dict[str, list[float]]:
    """Seconds per call of each fn, after one warm-up call each; the fns alternate within every rep so
    that changing background load affects all of them alike."""
    for fn in fns.values() if warmup else ():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            _sync(dev)
            t0 = time.perf_counter()
            fn()
            _sync(dev)
            times[name].append(time.perf_counter() - t0)
    return times


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def matmul(dev: torch.device, dtype: torch.dtype, n: int = 2048) -> tuple[Callable[[], Any], float]:
    """A large square matmul on all threads (the achievable-peak yardstick) and its FLOPs."""
    a, b = (torch.randn(n, n, device=dev, dtype=dtype) for _ in range(2))
    return (lambda: torch.mm(a, b)), 2.0 * n**3


def autocast(dev: torch.device) -> Any:
    return torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda")


# ----------------------------------------------------------------------------- FLOPs


@dataclass(frozen=True)
class Dims:
    d: int
    layers: int
    ff: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def of(cls, config: Any) -> Dims:
        hd = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        return cls(config.hidden_size, config.num_hidden_layers, config.intermediate_size,
                   config.num_attention_heads, kv, hd, config.vocab_size)  # fmt: skip

    @property
    def nonembed(self) -> int:
        """Decoder matmul weights: q, k, v, o projections and the gated MLP (norms ignored)."""
        q = self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        return self.layers * (2 * self.d * q + 2 * self.d * kv + 3 * self.d * self.ff)


def flop_parts(dims: Dims, batch: int, seq: int, logit_positions: int, past: int = 0) -> tuple[float, float, float]:
    """Forward FLOPs (linear, attention, LM head): 2·N_nonembed·B·seq; causal attention
    2 matmuls (QKᵀ, PV) × 2·L·B·seq·(past + seq/2)·H·d_head (the unmasked half of the new×new block);
    LM head 2·d·V per logit position."""
    linear = 2.0 * dims.nonembed * batch * seq
    attn = 4.0 * dims.layers * batch * seq * (past + seq / 2) * dims.heads * dims.head_dim
    return linear, attn, 2.0 * dims.d * dims.vocab * logit_positions


def forward_flops(dims: Dims, batch: int, seq: int, logit_positions: int, past: int = 0) -> float:
    return sum(flop_parts(dims, batch, seq, logit_positions, past))


def train_flops(dims: Dims, batch: int, seq: int, logit_positions: int) -> float:
    """Forward + backward for input gradients only (the LM is frozen: no weight gradients): linear
    layers and LM head 2× their forward, attention 3× (dQ, dK, dV, dP cost 2× the forward)."""
    linear, attn, head = flop_parts(dims, batch, seq, logit_positions)
    return 2 * linear + 3 * attn + 2 * head


# ----------------------------------------------------------------------------- evaluation


@torch.inference_mode()
def score_generate(s: Setup, projector: nn.Module) -> torch.Tensor:
    """The plain per-question scorer: `[head][image][question]` embeddings → `generate` one token
    with its scores → log-softmax → log P(Yes), log P(No)."""
    embed = s.model.get_input_embeddings()
    yes, no = s.prompt.choice_ids
    out = torch.empty(len(s.eval_rows), 2)
    for i, (image, text) in enumerate(s.eval_rows):
        ids = torch.tensor([s.prompt.head + s.prompt.question_ids(text)], device=s.dev)
        image_embeds = projector(s.feats[image : image + 1].to(s.dev).float())
        tokens = embed(ids)
        n = len(s.prompt.head)
        embeds = torch.cat([tokens[:, :n], image_embeds.to(tokens.dtype), tokens[:, n:]], dim=1)
        result = s.model.generate(
            inputs_embeds=embeds,
            attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=s.dev),
            max_new_tokens=1,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=s.prompt.tokenizer.pad_token_id or s.prompt.tokenizer.eos_token_id,
        )
        out[i] = torch.log_softmax(result.scores[0][0].float(), dim=-1)[[yes, no]].cpu()
    return out


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


# ----------------------------------------------------------------------------- training


def our_step(s: Setup, projector: nn.Module, opt: torch.optim.Optimizer, batch: list[int]) -> torch.Tensor:
    """One step exactly as `train_projector` runs it: cached features → projector → `answer_loss`."""
    rows = [s.train_rows[i] for i in batch]
    with autocast(s.dev):
        embeds = projector(s.feats[[r[0] for r in rows]].to(s.dev).float())
        loss = answer_loss(s.model, s.prompt, embeds, [s.prompt.question_ids(r[1]) for r in rows],
                           [s.prompt.answers[r[2]] for r in rows])  # fmt: skip
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(projector.parameters(), 1.0)
    opt.step()
    return loss.detach()


def llava_loss(s: Setup, projector: nn.Module, batch: list[int]) -> torch.Tensor:
    """HF-LLaVA-style loss: the (frozen) encoder on the pixels, the projector, the full sequence
    `[head][image][question][answer]` right-padded with an attention mask, `model(..., labels=...)`
    (full-vocabulary logits at every position, CE with everything but the answer set to -100)."""
    rows = [s.train_rows[i] for i in batch]
    embed = s.model.get_input_embeddings()
    _, pooled = s.encoder.encode(s.pixels[[r[0] for r in rows]].to(s.dev))
    image_embeds = projector(pooled)
    seqs, labels = [], []
    for (_, text, answer), img in zip(rows, image_embeds):
        q, a = s.prompt.question_ids(text), s.prompt.answers[answer]
        head = embed(torch.tensor(s.prompt.head, dtype=torch.long, device=s.dev))
        seqs.append(torch.cat([head, img.to(head.dtype), embed(torch.tensor(q + a, device=s.dev))]))
        labels.append([-100] * (len(s.prompt.head) + len(img) + len(q)) + a)
    length = max(len(x) for x in seqs)
    inputs = torch.zeros(len(seqs), length, seqs[0].shape[-1], dtype=seqs[0].dtype, device=s.dev)
    mask = torch.zeros(len(seqs), length, dtype=torch.long, device=s.dev)
    target = torch.full((len(seqs), length), -100, dtype=torch.long, device=s.dev)
    for i, (x, y) in enumerate(zip(seqs, labels)):
        inputs[i, : len(x)], mask[i, : len(x)], target[i, : len(y)] = x, 1, torch.tensor(y)
    return s.model(inputs_embeds=inputs, attention_mask=mask, labels=target).loss


def llava_step(s: Setup, projector: nn.Module, opt: torch.optim.Optimizer, batch: list[int]) -> torch.Tensor:
    with autocast(s.dev):
        loss = llava_loss(s, projector, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(projector.parameters(), 1.0)
    opt.step()
    return loss.detach()


def _seq_len(s: Setup, batch: list[int], k: int) -> tuple[int, int]:
    """(padded sequence length of `answer_loss`, number of logit positions) for a batch."""
    rows = [s.train_rows[i] for i in batch]
    text = max(len(s.prompt.question_ids(r[1])) + len(s.prompt.answers[r[2]]) - 1 for r in rows)
    return len(s.prompt.head) + k + text, sum(len(s.prompt.answers[r[2]]) for r in rows)


def bench_train(s: Setup, reps: int, batch_size: int) -> dict[str, Any]:
    torch.manual_seed(0)
    base = build_projector(PROJECTOR, s.feats.shape[-1], s.model.config.hidden_size).to(s.dev)
    ours_p, llava_p = base, copy.deepcopy(base)
    batches = [list(range(i, i + batch_size)) for i in range(0, len(s.train_rows) - batch_size + 1, batch_size)]
    # same projector, same batch: the two losses must agree (features: fp16 cache vs fresh fp32)
    with torch.no_grad(), autocast(s.dev):
        rows = [s.train_rows[i] for i in batches[0]]
        ours_loss = answer_loss(s.model, s.prompt, base(s.feats[[r[0] for r in rows]].to(s.dev).float()),
                                [s.prompt.question_ids(r[1]) for r in rows],
                                [s.prompt.answers[r[2]] for r in rows]).item()  # fmt: skip
        llava = llava_loss(s, base, batches[0]).item()
    opt_ours = torch.optim.AdamW(ours_p.parameters(), lr=1e-3)
    opt_llava = torch.optim.AdamW(llava_p.parameters(), lr=1e-3)
    cursor = {"ours": 0, "llava": 0}

    def step(name: str, fn: Callable[..., torch.Tensor], proj: nn.Module, opt: Any) -> Callable[[], None]:
        def run() -> None:
            fn(s, proj, opt, batches[cursor[name] % len(batches)])
            cursor[name] += 1

        return run

    mm, mm_flops = matmul(s.dev, torch.float32)
    fns = {"llava": step("llava", llava_step, llava_p, opt_llava), "ours": step("ours", our_step, ours_p, opt_ours),
           "matmul_fp32": mm}  # fmt: skip
    if s.dev.type == "cuda":
        mm16, _ = matmul(s.dev, torch.bfloat16)
        fns["matmul_bf16"] = mm16
    times = interleaved(fns, reps, s.dev)
    dims = Dims.of(s.model.config)
    flops = statistics.mean(train_flops(dims, batch_size, *_seq_len(s, b, PROJECTOR["prefix_tokens"])) for b in batches)
    peak_key = "matmul_bf16" if s.dev.type == "cuda" else "matmul_fp32"
    peak = mm_flops / med(times[peak_key])
    peak_best = mm_flops / min(times[peak_key])
    t_ours = med(times["ours"])
    return {
        "sps": {"llava": batch_size / med(times["llava"]), "ours": batch_size / t_ours},
        "loss_ours": ours_loss,
        "loss_llava": llava,
        "flops": flops,
        "achieved": flops / t_ours,
        "peak": peak,
        "peak_best": peak_best,
        "peak_key": peak_key,
        "batch": batch_size,
    }


def bench_scaling(s: Setup, tokens: list[int], batches: list[int], reps: int, d_vis: int = 384) -> list[dict[str, Any]]:
    """Our step with a token projector on synthetic `[B, T, d_vis]` features (T image tokens); on a CPU
    configurations above 1024 image tokens per step are skipped (minutes each)."""
    out = []
    dims = Dims.of(s.model.config)
    saved = s.feats
    grid = [(t, b) for t in tokens for b in batches if s.dev.type == "cuda" or t * b <= 1024]
    for n, (t, b) in enumerate(grid):
        torch.manual_seed(0)
        s.feats = torch.randn(len(saved), t, d_vis).half()
        proj = build_projector({"projector": "mlp", "prefix_tokens": 1, "features": "tokens"}, d_vis, dims.d)
        proj = proj.to(s.dev)
        opt = torch.optim.AdamW(proj.parameters(), lr=1e-3)
        batch = list(range(b))
        step = {"step": lambda: our_step(s, proj, opt, batch)}
        times = interleaved(step, reps, s.dev, warmup=n == 0 or s.dev.type == "cuda")["step"]
        flops = train_flops(dims, b, *_seq_len(s, batch, t))
        out.append({"tokens": t, "batch": b, "seconds": med(times), "flops": flops})
        print(f"scaling {out[-1]}", file=sys.stderr)
    s.feats = saved
    return out


# ----------------------------------------------------------------------------- projection


QWEN3_06B = Dims(d=1024, layers=28, ff=3072, heads=16, kv_heads=8, head_dim=128, vocab=151936)


def project_grid(mfu_measured: float) -> tuple[str, list[tuple[str, float]]]:
    """Paper-grid cost on one H100 (analytic FLOPs; MFU is an assumption, not a measurement)."""
    concepts, per_concept = 1222, 26107 / 1854  # THINGS images per concept (protocol.md §2)
    train_imgs, test_imgs = 0.70 * concepts * per_concept, 0.25 * concepts * per_concept
    q_per_image = 2 + 2 * 2040 / 1222  # leaf pos+neg, and a pos+neg per leaf–hypernym pair
    image_tokens, text_tokens, answer_tokens, runs, epochs = 256, 20, 2, 300, 5
    seq = image_tokens + text_tokens
    per_sample = train_flops(QWEN3_06B, 1, seq, answer_tokens)
    train_run = per_sample * train_imgs * q_per_image * epochs
    prefix = image_tokens + 8  # head + image + the question's common prefix, once per test image
    eval_run = test_imgs * (forward_flops(QWEN3_06B, 1, prefix, 0)
                            + q_per_image * forward_flops(QWEN3_06B, 1, text_tokens - 8, 1, past=prefix))  # fmt: skip
    total = runs * (train_run + eval_run)
    lines = [
        f"- training images {train_imgs:,.0f} (= 0.70 × 1,222 concepts × {per_concept:.2f} THINGS images/concept), "
        f"test images {test_imgs:,.0f}; questions per image {q_per_image:.2f} (2 leaf + 2 × 2,040/1,222 hypernym) — "
        "the `none` condition, an upper bound (deprivation removes hypernym rows)",
        f"- Qwen3-0.6B (d 1024, 28 layers, ff 3072, 16/8 heads × head_dim 128, vocab 151,936; "
        f"{QWEN3_06B.nonembed / 1e6:.0f} M non-embedding params); sequence = {image_tokens} image + "
        f"{text_tokens} text tokens (assumed), {answer_tokens} answer tokens scored",
        f"- training FLOPs/sample {per_sample / 1e9:.0f} GFLOP (formula above); per run "
        f"{train_run / 1e15:.0f} PFLOP (5 epochs, {train_imgs * q_per_image:,.0f} samples/epoch); evaluation per run "
        f"{eval_run / 1e15:.1f} PFLOP (image prefix once per test image, {text_tokens - 8} question tokens + 1 logit "
        "position per question); encoder feature extraction (once per encoder) is ignored",
        f"- grid: {runs} runs → {total / 1e18:.1f} EFLOP; H100 dense bf16 peak {H100_BF16_PEAK / 1e12:.0f} TFLOP/s",
    ]
    hours = [(f"assumed MFU {m:.0%}" + (" (= the MFU measured here, on CPU)" if m == mfu_measured else ""),
              total / (H100_BF16_PEAK * m) / 3600) for m in (0.40, 0.25, mfu_measured)]  # fmt: skip
    return "\n".join(lines), hours


# ----------------------------------------------------------------------------- report


def machine(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} "
            f"torch threads, load average {load} (shared with other jobs), torch {torch.__version__}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny random models, a few iterations (smoke run)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=None, help="markdown file (default benchmarks/results[-quick].md)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per measurement (after 1 warm-up)")
    parser.add_argument(
        "--flush-denormal",
        action="store_true",
        help="torch.set_flush_denormal(True) for every contender (CPU: subnormal floats from softmax underflow "
        "slow matmuls several-fold; the package does not set it yet)",
    )
    args = parser.parse_args()
    if args.flush_denormal:
        torch.set_flush_denormal(True)
    out = args.out or Path(__file__).parent / ("results-quick.md" if args.quick else "results.md")
    reps = args.reps or (2 if args.quick else 3)
    torch.set_grad_enabled(True)
    t_start = time.perf_counter()
    machine_before = machine(torch.device(args.device))
    s, what = build_setup(args.quick, args.device)
    print(f"models/data: {what}", file=sys.stderr)
    ev = bench_eval(s, reps)
    print(f"eval done: {ev}", file=sys.stderr)
    ev64 = eval_many_tokens(s, reps, 16 if args.quick else 64, 4)
    print(f"eval (many image tokens) done: {ev64}", file=sys.stderr)
    tr = bench_train(s, reps, batch_size=16)
    print(f"train done: {tr}", file=sys.stderr)
    tokens, batches = ([1, 16], [4]) if args.quick else ([1, 16, 64, 256], [4, 16])
    sc = bench_scaling(s, tokens, batches, reps=1)
    mfu = tr["achieved"] / tr["peak"]
    grid_text, hours = project_grid(mfu)

    gen, ref, ours = (ev["qps"][k] for k in ("generate", "reference", "ours"))
    gen64, ref64, ours64 = (ev64["qps"][k] for k in ("generate", "reference", "ours"))
    md = [
        "# taxvlm benchmark",
        "",
        f"- machine: {machine_before} (at start); {machine(s.dev)} (at end)",
        f"- models/data: {what}",
        *[f"- NOTE: {n}" for n in s.notes],
        f"- flush denormals: {'on' if args.flush_denormal else 'off (as the package runs today)'}",
        f"- {reps} timed repetitions per row after one warm-up, baselines and ours interleaved; medians; "
        f"total wall time {time.perf_counter() - t_start:.0f} s",
        "",
        "| measurement | baseline | ours | ratio (ours / baseline) | target |",
        "|---|---|---|---|---|",
        f"| eval questions/s vs per-question `generate` | {gen:.1f} | {ours:.1f} | **{ours / gen:.1f}×** | ≥ 20× |",
        f"| eval questions/s vs `score_questions_reference` | {ref:.1f} | {ours:.1f} | {ours / ref:.1f}× | — |",
        f"| same, {ev64['tokens']} image tokens (synthetic features, token projector) vs `generate` | {gen64:.1f} | "
        f"{ours64:.1f} | **{ours64 / gen64:.1f}×** | ≥ 20× |",
        f"| same, {ev64['tokens']} image tokens vs `score_questions_reference` | {ref64:.1f} | {ours64:.1f} | "
        f"{ours64 / ref64:.1f}× | — |",
        f"| train samples/s vs HF-LLaVA-style step (batch {tr['batch']}) | {tr['sps']['llava']:.2f} | "
        f"{tr['sps']['ours']:.2f} | **{tr['sps']['ours'] / tr['sps']['llava']:.2f}×** | ≥ 3× |",
        "",
        f"- eval set: {ev['n']} questions on {ev['images']} images; max |Δ log P(Yes/No)| ours vs generate "
        f"{ev['diff_generate']:.2e}, ours vs reference {ev['diff_reference']:.2e}; with {ev64['tokens']} image tokens: "
        f"{ev64['n']} questions on {ev64['images']} images, max |Δ| vs generate {ev64['diff_generate']:.2e}, "
        f"vs reference {ev64['diff_reference']:.2e}",
        f"- same batch, same projector: loss ours {tr['loss_ours']:.6f} vs HF `labels=` loss {tr['loss_llava']:.6f} "
        "(ours reads the fp16 feature cache; the baseline re-encodes the pixels in fp32)",
        "",
        "## Utilisation (our training step)",
        "",
        "FLOPs: forward = 2·N_nonembed·B·S + causal attention 4·L·B·S·(S/2)·H·d_head + LM head 2·d·V at the "
        "answer positions only; training = forward + backward for input gradients only (frozen LM, no weight "
        "gradients): 2× the linear and LM-head FLOPs, 3× the attention FLOPs. S = the padded length actually "
        "run. Projector, norms, RoPE, softmax, optimizer ignored.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| analytic FLOPs per step (batch {tr['batch']}) | {tr['flops'] / 1e9:.1f} GFLOP |",
        f"| achieved | {tr['achieved'] / 1e9:.1f} GFLOP/s |",
        f"| matmul rate ({tr['peak_key']}, 2048³ `torch.mm`, median / best, same interleaving) | "
        f"{tr['peak'] / 1e9:.1f} / {tr['peak_best'] / 1e9:.1f} GFLOP/s |",
        f"| **MFU** (achieved / median matmul rate) | **{mfu:.1%}** ({tr['achieved'] / tr['peak_best']:.1%} of best) |",
        "",
        "## Scaling of our training step (token projector on synthetic features; 1 timed rep each, after one "
        "warm-up step of the first configuration; on a CPU, configurations above 1024 image tokens per step are skipped)",
        "",
        "| image tokens | batch | s/step | samples/s | ms/sample | GFLOP/step | GFLOP/s | MFU |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['tokens']} | {r['batch']} | {r['seconds']:.3f} | {r['batch'] / r['seconds']:.1f} | "
            f"{1000 * r['seconds'] / r['batch']:.1f} | {r['flops'] / 1e9:.1f} | {r['flops'] / r['seconds'] / 1e9:.1f} | "
            f"{r['flops'] / r['seconds'] / tr['peak']:.1%} |"
            for r in sc
        ],
        "",
        "## Projected cost of the paper grid on one H100 (analytic, not measured)",
        "",
        grid_text,
        "",
        "| MFU assumption | H100 hours (training + evaluation, 300 runs) |",
        "|---|---|",
        *[f"| {label} | {h:,.0f} h ({h / 24:.1f} days) |" for label, h in hours],
        "",
    ]
    text = "\n".join(md)
    print(text)
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
