"""Seeds derived from the config, independent of PYTHONHASHSEED and of process order.

Each random choice gets its own stream keyed by a name, so adding a new random step never shifts
the draws of an existing one.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, *keys: str | int) -> int:
    """A 64-bit seed from a base seed and string keys, via sha256 (stable across runs and machines)."""
    text = "\x1f".join([str(seed), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def rng(seed: int, *keys: str | int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *keys))
