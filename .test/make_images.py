"""Regenerate the tiny `.test` image set: coloured shapes, one style per concept.

Committed output (a few KB) so that `snakemake --configfile .test/config/config.yaml` runs offline
anywhere; rerun this script only to change the fixture.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# concept: (RGB colour, shape); members of a hypernym share a colour family so it is learnable.
CONCEPTS = {
    "cat": ((200, 120, 40), "ellipse"),
    "dog": ((180, 100, 30), "rectangle"),
    "owl": ((150, 90, 60), "triangle"),
    "duck": ((120, 160, 60), "triangle"),
    "apple": ((220, 30, 30), "ellipse"),
    "banana": ((230, 210, 40), "rectangle"),
    "bread": ((200, 170, 110), "rectangle"),
    "hammer": ((60, 60, 200), "rectangle"),
    "saw": ((90, 90, 230), "triangle"),
    "drill": ((40, 80, 180), "ellipse"),
}
IMAGES_PER_CONCEPT = 6
SIZE = 32


def draw(colour: tuple[int, int, int], shape: str, rng: np.random.Generator) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(200, 256, size=3))
    image = Image.new("RGB", (SIZE, SIZE), background)
    pen = ImageDraw.Draw(image)
    x0, y0 = (int(v) for v in rng.integers(2, 10, size=2))
    x1, y1 = (int(v) for v in rng.integers(22, 30, size=2))
    jitter = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in colour)
    if shape == "ellipse":
        pen.ellipse((x0, y0, x1, y1), fill=jitter)
    elif shape == "rectangle":
        pen.rectangle((x0, y0, x1, y1), fill=jitter)
    else:
        pen.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=jitter)
    return image


def main() -> None:
    root = Path(__file__).parent / "data" / "images"
    rng = np.random.default_rng(0)
    for concept, (colour, shape) in CONCEPTS.items():
        folder = root / concept
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(IMAGES_PER_CONCEPT):
            draw(colour, shape, rng).save(folder / f"{concept}_{index:02d}.png", optimize=True)


if __name__ == "__main__":
    main()
