"""Tiny random models built offline from a config dict (tests and the `.test` config).

They exercise the same loading code as the real assets: an HF causal-LM folder with a real fast
tokenizer, an HF `Dinov2Model` folder with its image processor, and a timm state dict.
Everything is deterministic given `options["seed"]`, and each output folder appears atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from taxvlm.io import atomic_dir

# Words the prompts use plus common nouns, so a small BPE vocabulary has whole-word tokens for them;
# the byte-level alphabet still covers any other concept name.
_PROMPT_WORDS = "Is there a an in this image ? Yes No Question Answer : true that is it of kind".split()
_NOUNS = """owl cat dog bird fish horse cow sheep pig bear lion tiger mouse rabbit frog snake turtle
duck eagle bee ant butterfly spider apple banana orange grape lemon cherry pear bread cheese cake
carrot potato tomato onion corn flower rose tree oak pine grass hammer saw drill knife fork spoon cup
bowl bottle box bag car bus truck train boat plane bicycle shirt hat shoe dress coat sock guitar
piano drum violin chair table bed sofa lamp sword gun bow phone clock camera animal mammal insect
reptile food fruit vegetable plant tool vehicle clothing container instrument furniture weapon
device""".split()

_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _corpus() -> list[str]:
    """A generated corpus in which prompt words and nouns recur (with and without a leading space)."""
    lines = []
    for i, noun in enumerate(_NOUNS):
        article = "an" if noun[0] in "aeiou" else "a"
        answer = "Yes" if i % 2 else "No"
        lines += [f"Question: Is there {article} {noun} in this image? Answer: {answer}"] * 3
        lines.append(f"Is it true that {article} {noun} is a kind of {_NOUNS[(i * 7) % len(_NOUNS)]}?")
    lines += [" ".join(_PROMPT_WORDS)] * 10
    return lines


def build_tiny_tokenizer(options: dict[str, Any]):
    """Byte-level BPE trained on `_corpus()`: any string tokenizes; ' Yes' and ' No' are single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<pad>"] + (["<|im_start|>", "<|im_end|>"] if options.get("chat_template") else [])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=int(options.get("vocab_size", 512)),
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    eos = "<|im_end|>" if options.get("chat_template") else "</s>"
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token=eos, pad_token="<pad>")
    if options.get("chat_template"):
        fast.chat_template = _CHATML
    return fast


def _tiny_lm_config(options: dict[str, Any], tokenizer: Any):
    """A Llama (default) or Gemma-3 (`architecture: gemma3`: sliding-window layers, scaled embeddings,
    logit soft-capping, as in the real Gemma-3-270m; `head_dim` defaults to hidden / heads) config sized by
    `options`."""
    from transformers import Gemma3TextConfig, LlamaConfig

    heads = int(options.get("num_attention_heads", 4))
    layers = int(options.get("num_hidden_layers", 2))
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=int(options.get("hidden_size", 64)),
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=int(options.get("num_key_value_heads", heads)),
        intermediate_size=int(options.get("intermediate_size", 128)),
        max_position_embeddings=int(options.get("max_position_embeddings", 512)),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=bool(options.get("tie_word_embeddings", False)),
        initializer_range=float(options.get("initializer_range", 0.02)),
    )
    architecture = options.get("architecture", "llama")
    if architecture == "llama":
        return LlamaConfig(**common)
    if architecture == "gemma3":
        head_dim = int(options.get("head_dim", common["hidden_size"] // heads))
        return Gemma3TextConfig(
            **common,
            head_dim=head_dim,
            query_pre_attn_scalar=head_dim,
            sliding_window=int(options.get("sliding_window", 4)),
            layer_types=["sliding_attention"] * (layers - 1) + ["full_attention"],
            final_logit_softcapping=float(options.get("final_logit_softcapping", 30.0)),
        )
    raise ValueError(f"tiny LM option 'architecture' is {architecture!r}; expected 'llama' or 'gemma3'")


def build_tiny_causal_lm(out_dir: Path, options: dict[str, Any]) -> None:
    """A random causal LM (see `_tiny_lm_config`) plus tokenizer, saved as a plain HF folder."""
    from transformers import AutoModelForCausalLM

    tokenizer = build_tiny_tokenizer(options)
    torch.manual_seed(int(options.get("seed", 0)))
    model = AutoModelForCausalLM.from_config(_tiny_lm_config(options, tokenizer))
    with atomic_dir(Path(out_dir)) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def build_tiny_dinov2(out_dir: Path, options: dict[str, Any]) -> None:
    """A random `Dinov2Model` with a matching resize + centre-crop image processor."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    size = int(options.get("image_size", 56))
    config = Dinov2Config(
        hidden_size=int(options.get("hidden_size", 32)),
        num_hidden_layers=int(options.get("num_hidden_layers", 2)),
        num_attention_heads=int(options.get("num_attention_heads", 2)),
        mlp_ratio=int(options.get("mlp_ratio", 2)),
        patch_size=int(options.get("patch_size", 14)),
        image_size=size,
    )
    torch.manual_seed(int(options.get("seed", 0)))
    model = Dinov2Model(config)
    processor = BitImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        do_center_crop=True,
        do_convert_rgb=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    with atomic_dir(Path(out_dir)) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)


def build_tiny_timm(out_dir: Path, options: dict[str, Any]) -> None:
    """A random timm model: `model.safetensors` plus `timm_config.json` (name and the architecture
    kwargs, which `load_encoder` applies, since a tiny variant's shapes differ from the default)."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(int(options.get("seed", 0)))
    model = timm.create_model(options["name"], pretrained=False, **options.get("kwargs", {}))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    with atomic_dir(Path(out_dir)) as tmp:
        save_file(state, str(tmp / "model.safetensors"))
        config = {"name": options["name"], "kwargs": options.get("kwargs", {})}
        (tmp / "timm_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
