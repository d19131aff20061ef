"""Seeded stamp views (`taxvlm.data.augment`): torchvision's image operations with the parameters drawn
from the view's numpy Generator give, for the same seed, the same pixels as the PIL calls they
replaced (and on the real Tux Paint stamps all 783 default views were byte-identical)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from taxvlm.data import augment


def _earlier_view(stamp: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """The removed PIL-only version of `make_view`, with the same draws, for the comparison."""
    canvas = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, size=3)))
    stamp = stamp.convert("RGBA")
    scale = rng.uniform(*augment.SCALE_RANGE) * size / max(stamp.size)
    width, height = max(1, round(stamp.width * scale)), max(1, round(stamp.height * scale))
    object_ = stamp.resize((width, height), Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        object_ = object_.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    left, top = int(rng.integers(0, size - width + 1)), int(rng.integers(0, size - height + 1))
    canvas.paste(object_, (left, top), object_)
    area = rng.uniform(*augment.CROP_AREA_RANGE) * size * size
    aspect = math.exp(rng.uniform(-augment.CROP_LOG_ASPECT, augment.CROP_LOG_ASPECT))
    width, height = min(size, round(math.sqrt(area * aspect))), min(size, round(math.sqrt(area / aspect)))
    left, top = int(rng.integers(0, size - width + 1)), int(rng.integers(0, size - height + 1))
    return canvas.crop((left, top, left + width, top + height)).resize((size, size), Image.Resampling.BICUBIC)


def _stamp(seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(37, 53, 4), dtype=np.uint8)
    pixels[:5, :, 3] = 0  # a transparent band, as cut-outs have
    return Image.fromarray(pixels, "RGBA")


@pytest.mark.parametrize("seed", range(12))
def test_views_equal_the_earlier_pil_views_for_the_same_seed(seed: int) -> None:
    stamp = _stamp(seed)
    view = augment.make_view(stamp, 64, np.random.default_rng(seed))
    again = augment.make_view(stamp, 64, np.random.default_rng(seed))
    earlier = _earlier_view(stamp, 64, np.random.default_rng(seed))
    assert view.mode == "RGB" and view.size == (64, 64)
    assert view.tobytes() == again.tobytes() == earlier.tobytes()


def test_other_seeds_give_other_views() -> None:
    stamp = _stamp(0)
    views = {augment.make_view(stamp, 64, np.random.default_rng(s)).tobytes() for s in range(5)}
    assert len(views) == 5
