"""Seeded views of a single cut-out image (the `tuxpaint` stand-in for THINGS' photo sets).

A Tux Paint stamp is one RGBA picture per concept, while the split (docs/protocol.md §4) needs a dozen images per
concept to split 70/5/25. Each view pastes the stamp, scaled and possibly mirrored, at a random
position on a plain random background, then takes a random resized crop. This is a smoke-scale
stand-in: the views share one object instance, so it tests the pipeline, not visual generalisation.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

SCALE_RANGE = (0.55, 0.95)  # longer object side / canvas side
CROP_AREA_RANGE = (0.7, 1.0)  # random resized crop, fraction of the canvas area
CROP_LOG_ASPECT = math.log(4 / 3)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """A plain canvas in a random colour (the colour the alpha is flattened onto)."""
    colour = tuple(int(value) for value in rng.integers(0, 256, size=3))
    return Image.new("RGB", (size, size), colour)


def _place(stamp: Image.Image, canvas: Image.Image, rng: np.random.Generator) -> None:
    """Paste the stamp, scaled and maybe mirrored, at a random position that keeps it inside."""
    size = canvas.width
    scale = rng.uniform(*SCALE_RANGE) * size / max(stamp.size)
    width, height = max(1, round(stamp.width * scale)), max(1, round(stamp.height * scale))
    object_ = stamp.resize((width, height), Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        object_ = object_.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    left = int(rng.integers(0, size - width + 1))
    top = int(rng.integers(0, size - height + 1))
    canvas.paste(object_, (left, top), object_)


def _resized_crop(canvas: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Crop a random box (area and aspect ratio jittered) and resize it back to the canvas size."""
    size = canvas.width
    area = rng.uniform(*CROP_AREA_RANGE) * size * size
    aspect = math.exp(rng.uniform(-CROP_LOG_ASPECT, CROP_LOG_ASPECT))
    width = min(size, round(math.sqrt(area * aspect)))
    height = min(size, round(math.sqrt(area / aspect)))
    left = int(rng.integers(0, size - width + 1))
    top = int(rng.integers(0, size - height + 1))
    box = (left, top, left + width, top + height)
    return canvas.crop(box).resize((size, size), Image.Resampling.BICUBIC)


def make_view(stamp: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB view of an image (any mode; transparency becomes the random background)."""
    canvas = _background(rng, size)
    _place(stamp.convert("RGBA"), canvas, rng)
    return _resized_crop(canvas, rng)
