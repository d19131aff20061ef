"""Seeded views of a single cut-out image (the `tuxpaint` stand-in for THINGS' photo sets).

A Tux Paint stamp is one RGBA picture per concept, while the split (docs/protocol.md §4) needs a dozen images per
concept to split 70/5/25. Each view pastes the stamp, scaled and possibly mirrored, at a random
position on a plain random background, then takes a random resized crop. This is a smoke-scale
stand-in: the views share one object instance, so it tests the pipeline, not visual generalisation.

The image operations are torchvision's (`torchvision.transforms.v2.functional`: resize, horizontal
flip, resized crop, on PIL images, so the pixels are PIL's as before); the random parameters stay
drawn here from the view's numpy Generator (**decision**). torchvision's random transforms
(`v2.RandomResizedCrop`, `v2.RandomHorizontalFlip`) cannot give the same views for the same seed:
they take no generator and draw from torch's global RNG, and `RandomResizedCrop` samples otherwise
(up to ten tries, then a centre crop, where this module clamps the box to the canvas), so every
default image, and with it every result, would change. The paste onto a random background has no
torchvision counterpart. torchvision is imported on first use: importing it (and torch) takes
seconds, which every importer of `taxvlm.data.datasets` would otherwise pay.
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
    from torchvision.transforms.v2 import InterpolationMode, functional as TF  # torch + torchvision: seconds

    object_ = TF.resize(stamp, [height, width], interpolation=InterpolationMode.LANCZOS)
    if rng.random() < 0.5:
        object_ = TF.horizontal_flip(object_)
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
    from torchvision.transforms.v2 import InterpolationMode, functional as TF

    return TF.resized_crop(canvas, top, left, height, width, [size, size], interpolation=InterpolationMode.BICUBIC)


def make_view(stamp: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB view of an image (any mode; transparency becomes the random background)."""
    canvas = _background(rng, size)
    _place(stamp.convert("RGBA"), canvas, rng)
    return _resized_crop(canvas, rng)
