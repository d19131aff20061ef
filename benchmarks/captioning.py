"""Captions/s of `taxvlm.captioning.greedy_caption_ids` (batched, image prefix once per batch, KV
cache, finished rows dropped) vs a per-image HF `generate(inputs_embeds=..., do_sample=False)` loop
(`generate_caption_ids_reference`) on the same model, projector and features (target ≥ 5×
on a CPU).

Models (`--lm`): `tiny` (default; the tests' tiny random Llama), `smollm2-shape` (SmolLM2-135M's
published shape with random weights: no files needed; random logits rarely pick EOS, so every caption
runs to `--max-new-tokens`), `real` (the converted SmolLM2-135M in `resources/models/lms/smollm2_135m`,
or `--models DIR`). Features: random pooled `[N, 1280]` (EfficientNet-Lite0's width) through a random
`mlp` projector to 4 prefix tokens, as `config/config.yaml`. Both contenders produce the same token
ids (checked and printed), so they do the same decoding work. Timing as `benchmarks/run.py`: one
warm-up call each, then the two alternate within each repetition; medians.

Run: `.venv/bin/python benchmarks/captioning.py [--lm tiny|smollm2-shape|real] [--images 32]
[--batch-size 64] [--max-new-tokens 20] [--reps 2] [--device cpu|cuda]`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness import interleaved, machine, med
from workload import ROOT, TINY_LM, hf_lm
from taxvlm.captioning import generate_caption_ids_reference, greedy_caption_ids
from taxvlm.devices import flush_denormals_on_cpu
from taxvlm.models.lms import caption_prompt, load_lm
from taxvlm.models.projector import build_projector

PROJECTOR = {"projector": "mlp", "prefix_tokens": 4, "features": "pooled", "feature_norm": "none"}  # default's shape
D_VIS = 1280  # EfficientNet-Lite0's pooled width
# SmolLM2-135M's config.json (HuggingFaceTB/SmolLM2-135M): a 30-layer Llama, tied embeddings.
SMOLLM2_SHAPE = {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                 "intermediate_size": 1536, "vocab_size": 49152, "max_position_embeddings": 8192,
                 "rope_theta": 100000.0, "tie_word_embeddings": True, "bos_token_id": 0, "eos_token_id": 0}  # fmt: skip
SMOLLM2_PROMPT = ([100], [200, 300])  # arbitrary ids: head + 2 tokens, as "A| picture| of" (only lengths matter)


def load(kind: str, models: Path, dev: torch.device) -> tuple[nn.Module, list[int], list[int], list[int]]:
    """(model, head ids, prompt ids, stop ids) for `--lm`."""
    if kind == "smollm2-shape":
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPE)).requires_grad_(False).eval().to(dev)
        return model, *SMOLLM2_PROMPT, [SMOLLM2_SHAPE["eos_token_id"]]
    if kind == "real":
        folder = models / "lms/smollm2_135m"
        if not folder.is_dir():
            raise SystemExit(f"--lm real needs the converted SmolLM2-135M in {folder} (the pipeline converts it)")
    else:
        from taxvlm.assets.tiny import build_tiny_causal_lm

        folder = Path(tempfile.mkdtemp()) / "tiny_lm"
        build_tiny_causal_lm(folder, TINY_LM)
    model, tokenizer = load_lm(hf_lm(folder, "pretrained"), dev)
    return model, *caption_prompt(tokenizer), [tokenizer.eos_token_id]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lm", choices=["tiny", "smollm2-shape", "real"], default="tiny")
    parser.add_argument("--models", type=Path, default=ROOT / "resources/models")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dev = torch.device(args.device)
    flush_denormals_on_cpu(dev)
    model, head, prompt, stops = load(args.lm, args.models, dev)
    torch.manual_seed(1)
    projector = build_projector(PROJECTOR, D_VIS, model.get_input_embeddings().embedding_dim).eval().to(dev)
    feats = torch.randn(args.images, D_VIS).half()
    images = list(range(args.images))
    out: dict[str, Any] = {}

    def ours() -> None:
        out["ours"] = greedy_caption_ids(
            model, head, prompt, projector, feats, images, args.max_new_tokens, args.batch_size, stops
        )

    def generate() -> None:
        out["generate"] = generate_caption_ids_reference(
            model, head, prompt, projector, feats, images, args.max_new_tokens, stops
        )

    with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
        times = interleaved({"generate": generate, "ours": ours}, args.reps, dev)
    same = sum(a == b for a, b in zip(out["ours"], out["generate"]))
    tokens = sum(len(ids) for ids in out["ours"])
    rate = {name: args.images / med(t) for name, t in times.items()}
    per_caption = tokens / args.images
    print(f"machine: {machine(dev)}; LM: {args.lm}; {args.images} images, batch {args.batch_size}")
    print(f"max {args.max_new_tokens} new tokens ({per_caption:.1f} per caption); {args.reps} reps")
    print("| decoder | captions/s | median s |\n|---|---|---|")
    for name in ("generate", "ours"):
        print(f"| {name} | {rate[name]:.2f} | {med(times[name]):.2f} |")
    print(f"ratio ours / generate: {rate['ours'] / rate['generate']:.1f}x; identical captions: {same}/{args.images}")


if __name__ == "__main__":
    main()
