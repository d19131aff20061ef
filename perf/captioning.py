"""Captions/s of `taxvlm.evaluation.captioning.greedy_caption_ids` (HF `generate(inputs_embeds=...)`, one call per
batch of images) vs the same `generate` one image at a time (`generate_caption_ids_reference`, the
tests' oracle), on the same model, projector and features.

At commit 64d84db this benchmark also timed a hand-written KV-cache decoder that dropped finished rows;
issue 31 kept it only if >= 1.5x faster than batched `generate`. On SmolLM2-135M it was not (its
table: `perf/results-captioning.md`), so the package now decodes with `generate`.

Models (`--lm`): `tiny` (default; the tests' tiny random Llama), `smollm2-shape` (SmolLM2-135M's
published shape with random weights: no files needed; random logits rarely pick EOS, so every caption
runs to `--max-new-tokens`), `real` (the converted SmolLM2-135M in `resources/models/lms/smollm2_135m`,
or `--models DIR`). Features: random pooled `[N, 1280]` (EfficientNet-Lite0's width) through a random
`mlp` projector to 4 prefix tokens, as `config/config.yaml`. Both contenders produce the same token
ids (checked and printed). Timing as `perf/run.py`: one warm-up call each, then the contenders
alternate within each repetition; medians.

Run: `.venv/bin/python perf/captioning.py [--lm tiny|smollm2-shape|real] [--images 32]
[--batch-size 64] [--max-new-tokens 20] [--reps 2] [--device cpu|cuda] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness import interleaved, machine, med
from workload import ROOT, TINY_LM, hf_lm
from taxvlm.evaluation.captioning import generate_caption_ids_reference, greedy_caption_ids
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
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
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

    def per_image() -> None:
        out["generate (per image)"] = generate_caption_ids_reference(
            model, head, prompt, projector, feats, images, args.max_new_tokens, stops
        )

    contenders = {"generate (per image)": per_image, "ours": ours}
    with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
        times = interleaved(contenders, args.reps, dev)
    tokens = sum(len(ids) for ids in out["ours"])
    rate = {name: args.images / med(t) for name, t in times.items()}
    lines = [
        f"machine: {machine(dev)}; LM: {args.lm}; {args.images} images, batch {args.batch_size}",
        f"max {args.max_new_tokens} new tokens ({tokens / args.images:.1f} per caption); {args.reps} reps",
        "",
        "| decoder | captions/s | median s | ours / this | identical captions |",
        "|---|---|---|---|---|",
    ]
    for name in contenders:
        same = sum(a == b for a, b in zip(out["ours"], out[name]))
        lines.append(
            f"| {name} | {rate[name]:.2f} | {med(times[name]):.2f} | {rate['ours'] / rate[name]:.2f}x | "
            f"{same}/{args.images} |"
        )
    print("\n".join(lines))
    if args.out:
        command = f"`perf/captioning.py {' '.join(sys.argv[1:])}`"
        args.out.write_text("\n\n".join(["# Captioning decode", command, "\n".join(lines)]) + "\n")


if __name__ == "__main__":
    main()
