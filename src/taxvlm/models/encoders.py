"""Frozen image encoders behind one interface: PIL image → (token features, pooled vector).

Token features (`[B, T, D]`) are what a token projector consumes; the pooled vector (`[B, D']`) is
what a pooled projector and the coherence analysis consume. Both are cached, so the encoder runs
once per image. Which features an encoder gives is `spec.layer`, which every spec must state
(**decision**: no default, because the right layer depends on the encoder's role, not its source):

- an integer: that block's output, the choice for self-supervised ViTs (the paper feeds DINOv2's
  second-to-last block, `-2`);
  - `hf` (Dinov2 / ViT / CLIPVision / SiglipVision): `hidden_states[layer]`, patch tokens only
    (CLS and register tokens dropped); pooled = their mean;
  - `timm`: `forward_intermediates` of that block; CNN maps are flattened to H·W tokens, ViT prefix
    tokens dropped; pooled = mean of the tokens;
  - `open_clip`: the visual tower's `forward_intermediates` of that block; pooled = `encode_image`
    (the contrastive embedding, which may have another width than the tokens).
- `final` (`timm` only): the model's own final features, the choice for a label-supervised CNN (as
  LiMBeR feeds NF-ResNet's pooled head): tokens = `forward_features` (a CNN's last map after its conv
  head, flattened to H·W tokens; ViT prefix tokens dropped), pooled = `forward_head(pre_logits=True)`,
  the vector the classifier reads (1280-d for EfficientNet-Lite0, the global average of the tokens).

`Encoder.meta` records the layer and what tokens and pooled are; the feature cache stores it with the
token shape, so every run output states which features it was trained on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from taxvlm.models.guard import check_loading_info, require_pretrained
from taxvlm.models.origin import loaded_from
from taxvlm.settings.models import EncoderSpec

Preprocess = Callable[[Any], torch.Tensor]  # PIL image → [3, H, W]
Encode = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # [B,3,H,W] → tokens, pooled
FINAL = "final"  # `layer` value: the model's own final (pre-classifier) features


@dataclass
class Encoder:
    model: nn.Module
    preprocess: Preprocess
    encode: Encode
    meta: dict[str, Any] = field(default_factory=dict)


def _flatten_tokens(feats: torch.Tensor, num_prefix: int = 0) -> torch.Tensor:
    """NCHW maps → [B, H·W, C]; NLC sequences lose their `num_prefix` leading (CLS/register) tokens."""
    if feats.ndim == 4:
        return feats.flatten(2).transpose(1, 2)
    return feats[:, num_prefix:]


def _layer(spec: EncoderSpec, allow_final: bool) -> int | str:
    """The spec's `layer`: an integer block index, or `final` where the source supports it."""
    layer = spec.layer
    if allow_final and layer == FINAL:
        return FINAL
    if isinstance(layer, int) and not isinstance(layer, bool):
        return layer
    expected = "an integer block index or 'final'" if allow_final else "an integer block index"
    raise ValueError(f"encoder spec field 'layer' is {layer!r}; a {spec.source} encoder needs {expected}")


def _load_timm(spec: EncoderSpec, weights_dir: Path | None) -> Encoder:
    import timm

    layer = _layer(spec, allow_final=True)
    if spec.revision:
        raise ValueError(f"timm encoder {spec.name!r}: `revision` is not supported for timm; pin it with local `weights`")
    kwargs = {}
    if weights_dir is not None:
        saved = Path(weights_dir) / "timm_config.json"  # architecture kwargs of a tiny local build
        kwargs = json.loads(saved.read_text())["kwargs"] if saved.exists() else {}
        kwargs["pretrained_cfg_overlay"] = {"file": str(Path(weights_dir) / "model.safetensors")}
    with require_pretrained(f"timm encoder {spec.name!r}"):
        model = timm.create_model(spec.name, pretrained=True, **kwargs)
    size = spec.image_size
    data_cfg = timm.data.resolve_data_config({"input_size": (3, size, size)}, model=model)
    num_prefix = getattr(model, "num_prefix_tokens", 0)

    def encode(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if layer == FINAL:
            feats = model.forward_features(pixels)
            return _flatten_tokens(feats, num_prefix), model.forward_head(feats, pre_logits=True)
        (feats,) = model.forward_intermediates(pixels, indices=[layer], intermediates_only=True)
        tokens = _flatten_tokens(feats)
        return tokens, tokens.mean(1)

    if layer == FINAL:
        described = {"tokens": "forward_features, flattened", "pooled": "forward_head(pre_logits=True)"}
    else:
        described = {"tokens": f"forward_intermediates block {layer}", "pooled": "mean of tokens"}
    meta = {"image_size": list(data_cfg["input_size"][1:]), "layer": layer, **described,
            "loaded": _loaded(spec, weights_dir)}
    return Encoder(model, timm.data.create_transform(**data_cfg), encode, meta)


def _open_clip_weights(spec: EncoderSpec, weights_dir: Path | None) -> str | None:
    """The config's `id` (open_clip's pretrained tag, e.g. `webli`, `openai`) unless a local folder with
    exactly one checkpoint file is given. Without either, open_clip would only log that it loaded no
    weights and the run would silently use a random encoder, so that is an error. With `revision`, the
    tag's hub file is fetched at that commit (open_clip itself always takes the hub's newest)."""
    if weights_dir is None:
        if not spec.id:
            raise ValueError(f"open_clip encoder {spec.name!r} needs `id` (its pretrained tag) or local `weights`")
        return _pinned_open_clip_file(spec) if spec.revision else spec.id
    files = sorted(p for p in Path(weights_dir).iterdir() if p.suffix in {".safetensors", ".bin", ".pt", ".pth"})
    if len(files) != 1:
        raise ValueError(f"open_clip weights dir {weights_dir} must hold exactly one checkpoint, found {files}")
    return str(files[0])


def _pinned_open_clip_file(spec: EncoderSpec) -> str:
    """The local path of the tag's hub checkpoint at commit `spec.revision`."""
    import open_clip
    from open_clip.pretrained import download_pretrained_from_hf

    hub = open_clip.get_pretrained_cfg(spec.name, spec.id).get("hf_hub", "")
    if not hub:
        raise ValueError(f"open_clip encoder {spec.name!r}: tag {spec.id!r} is not on the hub; `revision` cannot pin it")
    repo, filename = os.path.split(hub)  # as open_clip splits it: `org/repo/` or `org/repo/file`
    return download_pretrained_from_hf(repo, filename=filename or None, revision=spec.revision)


def _loaded(spec: EncoderSpec, weights_dir: Path | None, commit: str | None = None) -> dict[str, Any]:
    """What was loaded, for the feature cache and train_config.json: local folder or hub id + commit."""
    if weights_dir is not None:
        return loaded_from(weights_dir)
    return {"id": spec.id or spec.name, "revision": spec.revision, "commit": commit}


def _load_open_clip(spec: EncoderSpec, weights_dir: Path | None) -> Encoder:
    import open_clip

    layer = _layer(spec, allow_final=False)
    with require_pretrained(f"open_clip encoder {spec.name!r}"):
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.name, pretrained=_open_clip_weights(spec, weights_dir)
        )
    visual = model.visual

    def encode(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = visual.forward_intermediates(pixels, indices=[layer], intermediates_only=True, output_fmt="NLC")
        return out["image_intermediates"][0], model.encode_image(pixels)

    size = visual.image_size if hasattr(visual, "image_size") else spec.image_size
    meta = {
        "image_size": list(size) if isinstance(size, tuple) else size,
        "layer": layer,
        "tokens": f"forward_intermediates block {layer}",
        "pooled": "encode_image",
        "loaded": _loaded(spec, weights_dir),
    }
    return Encoder(model, preprocess, encode, meta)


def _load_hf(spec: EncoderSpec, weights_dir: Path | None) -> Encoder:
    from transformers import AutoImageProcessor, AutoModel

    layer = _layer(spec, allow_final=False)
    source = str(weights_dir) if weights_dir is not None else spec.id
    token = os.environ.get("HF_TOKEN")
    revision = spec.revision if weights_dir is None else None
    model, info = AutoModel.from_pretrained(source, token=token, revision=revision, output_loading_info=True)
    check_loading_info(f"hf encoder {source!r}", info)
    model = getattr(model, "vision_model", model)  # full CLIP/SigLIP checkpoints → their image tower
    processor = AutoImageProcessor.from_pretrained(source, token=token, revision=revision)
    patch = model.config.patch_size

    def preprocess(image: Any) -> torch.Tensor:
        return processor(images=image, return_tensors="pt")["pixel_values"][0]

    def encode(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states[layer]
        n_patches = (pixels.shape[-2] // patch) * (pixels.shape[-1] // patch)
        tokens = hidden[:, hidden.shape[1] - n_patches :]  # prefix (CLS, registers) sits in front
        return tokens, tokens.mean(1)

    meta = {"layer": layer, "tokens": f"hidden_states[{layer}] patch tokens", "pooled": "mean of patch tokens",
            "loaded": _loaded(spec, weights_dir, getattr(model.config, "_commit_hash", None))}
    return Encoder(model, preprocess, encode, meta)


_SOURCES: dict[str, Callable[[EncoderSpec, Path | None], Encoder]] = {
    "timm": _load_timm,
    "open_clip": _load_open_clip,
    "hf": _load_hf,
}


def load_encoder(spec: EncoderSpec, weights_dir: Path | None, device: str | torch.device = "cpu") -> Encoder:
    """Build the frozen encoder named by `spec.source`, in eval mode on `device`."""
    if spec.source not in _SOURCES:
        raise ValueError(f"encoder spec field 'source' is {spec.source!r}; expected one of {sorted(_SOURCES)}")
    encoder = _SOURCES[spec.source](spec, weights_dir)
    encoder.model.requires_grad_(False).eval().to(device)
    encoder.meta = {"spec": spec.record(), **encoder.meta}
    return encoder
