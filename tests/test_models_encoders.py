"""Encoder loaders (tiny timm / HF / open_clip models saved locally), the feature cache, projectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from taxvlm.assets.tiny import build_tiny_dinov2, build_tiny_timm
from taxvlm.features import extract_features
from taxvlm.io import write_tsv
from taxvlm.models.encoders import load_encoder
from taxvlm.models.projector import build_projector
from taxvlm.settings.models import EncoderSpec
from taxvlm.settings.schema import fill_defaults

from spec_builders import encoder_spec


def _images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(n)]


def _write_images(root: Path, ids: list[str]) -> None:
    """`_images()` saved under `root/img` and listed, in `ids` order, by `root/images.tsv` (paths
    relative to `root`; concept = the id's folder)."""
    (root / "img").mkdir()
    paths = [f"img/{i.replace('/', '_')}.png" for i in ids]
    for path, image in zip(paths, _images(len(ids))):
        image.save(root / path)
    concepts = [i.split("/")[0] for i in ids]
    table = pd.DataFrame({"image_id": ids, "concept": concepts, "path": paths, "split": "train"})
    write_tsv(table, root / "images.tsv")


def _encode(encoder, images: list[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        return encoder.encode(torch.stack([encoder.preprocess(im) for im in images]))


@pytest.mark.parametrize(
    "name, layer, tokens, dim",
    [
        ("test_vit", -2, 100, 64),  # 160 px / 16 px patches, prefix (CLS) dropped
        ("test_efficientnet", "final", 25, 256),  # final 5×5 map of the conv head, flattened
    ],
)
def test_timm_shapes(tmp_path: Path, name: str, layer: int | str, tokens: int, dim: int) -> None:
    build_tiny_timm(tmp_path / name, {"name": name, "seed": 0})
    encoder = load_encoder(encoder_spec(name=name, layer=layer, image_size=160), tmp_path / name)
    tok, pooled = _encode(encoder, _images())
    assert tok.shape == (3, tokens, dim) and pooled.shape == (3, dim)
    torch.testing.assert_close(pooled, tok.mean(1))  # a CNN's pre-logits = global average of its final map
    assert not any(p.requires_grad for p in encoder.model.parameters())


@pytest.mark.parametrize(
    "name, image_size, dim", [("test_efficientnet", None, 256), ("tf_efficientnet_lite0", 64, 1280)]
)
def test_timm_final_layer_is_the_pre_logits_features(
    tmp_path: Path, name: str, image_size: int | None, dim: int
) -> None:
    """`layer: final` gives the classifier's input (1280-d for EfficientNet-Lite0), not an inner block
    (its block -2 has 112 channels there), and the features file records it."""
    build_tiny_timm(tmp_path / name, {"name": name, "seed": 0})
    spec = encoder_spec(name=name, layer="final", image_size=image_size or 160)
    encoder = load_encoder(spec, tmp_path / name)
    tok, pooled = _encode(encoder, _images(2))
    with torch.inference_mode():
        pixels = torch.stack([encoder.preprocess(im) for im in _images(2)])
        pre_logits = encoder.model.forward_head(encoder.model.forward_features(pixels), pre_logits=True)
    assert pooled.shape == (2, dim) == pre_logits.shape and tok.shape[-1] == dim == encoder.model.num_features
    torch.testing.assert_close(pooled, pre_logits)
    inner, _ = _encode(load_encoder(spec.model_copy(update={"layer": -2}), tmp_path / name), _images(2))
    assert inner.shape[-1] < dim
    assert encoder.meta["layer"] == "final" and encoder.meta["pooled"] == "forward_head(pre_logits=True)"


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"source": "timm", "name": "test_efficientnet"}, "'layer' is a required property"),
        ({"source": "hf", "layer": "final"}, "'layer' is 'final'; a hf encoder needs an integer block index"),
        ({"source": "open_clip", "name": "x", "layer": "final"}, "'layer' is 'final'; a open_clip encoder needs"),
    ],
)
def test_layer_must_be_stated(spec: dict, match: str) -> None:
    """No source-independent default: the role of the encoder decides the layer, so the spec says it
    (the schema requires it; `final` is for timm only)."""
    with pytest.raises(ValueError, match=match):
        load_encoder(EncoderSpec.from_config(fill_defaults(spec, "encoders", "*")), None)


def test_timm_loads_tiny_kwargs_and_saved_weights(tmp_path: Path) -> None:
    options = {
        "name": "vit_tiny_patch16_224",
        "seed": 3,
        "kwargs": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
    }
    build_tiny_timm(tmp_path / "vit", options)
    encoder = load_encoder(encoder_spec(name=options["name"], image_size=32), tmp_path / "vit")
    saved = load_file(tmp_path / "vit" / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in encoder.model.state_dict().items())
    tok, pooled = _encode(encoder, _images(2))
    assert tok.shape == (2, 16, 32) and pooled.shape == (2, 32)


def test_hf_dinov2_patch_tokens(tmp_path: Path) -> None:
    build_tiny_dinov2(tmp_path / "dino", {"image_size": 56, "hidden_size": 32, "seed": 0})
    encoder = load_encoder(encoder_spec(source="hf"), tmp_path / "dino")
    tok, pooled = _encode(encoder, _images())
    assert tok.shape == (3, 16, 32) and pooled.shape == (3, 32)  # (56/14)² patches, CLS dropped
    with torch.inference_mode():
        pixels = torch.stack([encoder.preprocess(im) for im in _images()])
        hidden = encoder.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    torch.testing.assert_close(tok, hidden[:, 1:])


def test_open_clip_local_file(tmp_path: Path) -> None:
    open_clip = pytest.importorskip("open_clip")
    config = {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
    }
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "taxvlm-tiny-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "cfg")
    (tmp_path / "w").mkdir()
    torch.save(open_clip.create_model("taxvlm-tiny-clip").state_dict(), tmp_path / "w" / "open_clip_model.pt")
    encoder = load_encoder(encoder_spec(source="open_clip", name="taxvlm-tiny-clip"), tmp_path / "w")
    tok, pooled = _encode(encoder, _images(2))
    assert tok.shape == (2, 16, 32) and pooled.shape == (2, 24)  # block -2 patch tokens; contrastive embedding


def test_unknown_source_names_the_field() -> None:
    with pytest.raises(ValueError, match="'source'"):
        load_encoder(encoder_spec().model_copy(update={"source": "onnx"}), None)


def test_feature_cache_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # images.tsv paths are relative to the working directory
    ids = ["b/b_0", "a/a_0", "a/a_1"]  # table order, not sorted order, is the cache order
    _write_images(tmp_path, ids)
    build_tiny_dinov2(tmp_path / "dino", {"seed": 0})
    spec = encoder_spec(source="hf", features="tokens")
    extract_features(spec, tmp_path / "dino", Path("images.tsv"), Path("features.pt"), batch_size=2, device="cpu")
    cache = torch.load(tmp_path / "features.pt", weights_only=True)
    assert set(cache) == {"image_ids", "tokens", "pooled", "meta"} and cache["image_ids"] == ids
    assert cache["tokens"].dtype == cache["pooled"].dtype == torch.float16
    assert cache["tokens"].shape == (3, 16, 32) and cache["pooled"].shape == (3, 32)
    assert cache["meta"]["spec"] == spec.record() and cache["meta"]["image_size"] == [56, 56]
    tok, _ = _encode(load_encoder(spec, tmp_path / "dino"), [Image.open(f"img/{ids[0].replace('/', '_')}.png")])
    torch.testing.assert_close(cache["tokens"][0].float(), tok[0], atol=2e-3, rtol=2e-3)


def test_feature_cache_records_the_layer_and_feature_dim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run outputs say which features a projector was trained on: layer and [tokens, dim]."""
    monkeypatch.chdir(tmp_path)
    _write_images(tmp_path, ["a/a_0", "b/b_0"])
    build_tiny_timm(tmp_path / "cnn", {"name": "test_efficientnet", "seed": 0})
    spec = encoder_spec(name="test_efficientnet", layer="final", features="pooled", image_size=160)
    extract_features(spec, tmp_path / "cnn", Path("images.tsv"), Path("features.pt"), batch_size=2, device="cpu")
    cache = torch.load(tmp_path / "features.pt", weights_only=True)
    assert cache["meta"]["layer"] == "final" and cache["meta"]["spec"]["layer"] == "final"
    assert cache["meta"]["token_shape"] == [25, 256] and cache["pooled"].shape == (2, 256)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU path needs a CUDA device")
def test_feature_cache_on_gpu_matches_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 autocast on the GPU: the same cache format, values equal to the CPU's to bf16 precision."""
    monkeypatch.chdir(tmp_path)
    _write_images(tmp_path, [f"a/a_{i}" for i in range(5)])
    build_tiny_dinov2(tmp_path / "dino", {"seed": 0})
    spec = encoder_spec(source="hf", features="tokens")
    for dev in ("cpu", "cuda"):
        extract_features(spec, tmp_path / "dino", Path("images.tsv"), Path(f"{dev}.pt"), batch_size=2, device=dev)
    cpu, gpu = (torch.load(tmp_path / f"{dev}.pt", weights_only=True) for dev in ("cpu", "cuda"))
    assert gpu["image_ids"] == cpu["image_ids"] and gpu["tokens"].dtype == torch.float16
    for key in ("tokens", "pooled"):
        torch.testing.assert_close(gpu[key].float(), cpu[key].float(), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("kind", ["mlp", "linear"])
def test_projector_shapes(kind: str) -> None:
    spec = {"projector": kind, "prefix_tokens": 4, "feature_norm": "none"}
    tokens = build_projector({**spec, "features": "tokens"}, 16, 8)
    pooled = build_projector({**spec, "features": "pooled"}, 16, 8)
    assert tokens(torch.randn(2, 7, 16)).shape == (2, 7, 8)
    assert pooled(torch.randn(2, 16)).shape == (2, 4, 8)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in pooled.modules())
    assert n_linear == (2 if kind == "mlp" else 1)


def test_open_clip_hub_tag_comes_from_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """`id: webli` reaches open_clip as the pretrained tag; a spec without it is refused, never a random encoder."""
    open_clip = pytest.importorskip("open_clip")
    asked = {}

    def fake_create(name: str, pretrained: str | None = None, **kwargs):
        asked["pretrained"] = pretrained
        raise RuntimeError("stop before any download")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", fake_create)
    spec = encoder_spec(source="open_clip", name="ViT-B-16-SigLIP", id="webli")
    with pytest.raises(RuntimeError, match="stop before any download"):
        load_encoder(spec, None)
    assert asked["pretrained"] == "webli"
    with pytest.raises(ValueError, match="needs `id`"):
        load_encoder(spec.model_copy(update={"id": None}), None)
