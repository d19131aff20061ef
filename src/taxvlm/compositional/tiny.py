"""A tiny open_clip architecture registered under a name: the faithful mode's offline stand-in for
ViT-B-32 (random init; the tests and the CPU default), built from a config dict, never downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taxvlm.io import write_json

TINY_OPEN_CLIP: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def register_open_clip_config(name: str, config: dict[str, Any], folder: Path) -> None:
    """Make `name` an open_clip model name (`folder/name.json`); open_clip's own tokenizer is used."""
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    write_json(config, folder / f"{name}.json")
    open_clip.add_model_config(folder / f"{name}.json")
