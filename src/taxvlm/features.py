"""Run a frozen encoder once over every image and cache its features (fp16).

Training and evaluation read this cache instead of re-running the encoder every step, which is
what makes a projector run cost only LM passes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from taxvlm.devices import resolve_device
from taxvlm.io import CorruptResultError, read_tsv, save_pt
from taxvlm.models.encoders import Preprocess, load_encoder
from taxvlm.progress import Progress
from taxvlm.settings.models import EncoderSpec

log = logging.getLogger(__name__)


class CorruptCacheError(CorruptResultError):
    """A feature cache that cannot be read (truncated, overwritten, not a cache)."""


FEATURE_KEYS = ("image_ids", "tokens", "pooled")


def load_features(path: Path) -> dict[str, Any]:
    """Memory-map the cache so a large feature file does not have to fit in RAM.

    Snakemake does not rebuild an output that exists, so a damaged cache would fail every job that
    reads it with a `torch.load` traceback; the error names it and the command that rebuilds it.
    """
    fix = f"rebuild it with: snakemake --forcerun {path} (plus your usual options and targets)"
    try:
        data = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for damaged files
        raise CorruptCacheError(f"{path}: corrupt feature cache ({type(err).__name__}); {fix}") from err
    if not isinstance(data, dict) or any(key not in data for key in FEATURE_KEYS):
        raise CorruptCacheError(f"{path}: not a feature cache (needs keys {list(FEATURE_KEYS)}); {fix}")
    return data


class _Images(torch.utils.data.Dataset):
    def __init__(self, paths: list[str], preprocess: Preprocess):
        self.paths, self.preprocess = paths, preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as image:
            return self.preprocess(image.convert("RGB"))


def extract_features(
    spec: EncoderSpec,
    weights_dir: Path | None,
    images_tsv: Path,
    out_path: Path,
    batch_size: int = 32,
    device: str = "auto",
    num_workers: int = 0,
) -> None:
    """Write `{"image_ids", "tokens" [N,T,D], "pooled" [N,D'], "meta"}` in images.tsv order."""
    dev = resolve_device(device)
    images = read_tsv(images_tsv)
    if images.empty:
        raise ValueError(f"{images_tsv} lists no images")
    encoder = load_encoder(spec, weights_dir, dev)
    loader = torch.utils.data.DataLoader(
        _Images(list(images["path"]), encoder.preprocess), batch_size=batch_size, num_workers=num_workers
    )
    tokens = pooled = None
    start, t0 = 0, time.perf_counter()
    with torch.inference_mode(), torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
        for pixels in Progress(loader, desc=f"features {spec.name or spec.id}", unit="batch"):
            tok, pool = encoder.encode(pixels.to(dev))
            if tokens is None:  # preallocate once the shapes are known: no list of batches to concatenate
                tokens = torch.empty(len(images), *tok.shape[1:], dtype=torch.float16)
                pooled = torch.empty(len(images), *pool.shape[1:], dtype=torch.float16)
            tokens[start : start + len(tok)] = tok.half().cpu()
            pooled[start : start + len(tok)] = pool.half().cpu()
            start += len(tok)
            image_size = list(pixels.shape[-2:])
    elapsed = time.perf_counter() - t0
    log.info("%d images in %.1fs (%.1f images/s) on %s", len(images), elapsed, len(images) / elapsed, dev)
    meta = {**encoder.meta, "image_size": image_size, "token_shape": list(tokens.shape[1:])}
    save_pt({"image_ids": list(images["image_id"]), "tokens": tokens, "pooled": pooled, "meta": meta}, out_path)
