"""Refuse a model that was asked for pretrained weights and came up randomly initialised.

timm and open_clip only *log* that they found no weights (and transformers only logs the weights it
had to initialise), so a wrong tag or a missing file used to give a run on a random encoder whose
results looked plausible. Here every such message, and every missing key transformers reports, is an
error naming the model.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence

# What timm (`_builder.load_pretrained`), open_clip (`factory.create_model`) and transformers
# (`modeling_utils`, "newly initialized") say when they fall back to random weights.
RANDOM_INIT = re.compile(r"random(ly)? init|initialized randomly|newly initialized", re.IGNORECASE)


class RandomInitError(RuntimeError):
    """A model asked for pretrained weights loaded (partly) random ones."""


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if RANDOM_INIT.search(message):
            self.messages.append(message.splitlines()[0])


@contextlib.contextmanager
def require_pretrained(what: str) -> Iterator[None]:
    """Raise `RandomInitError` if a loader inside the block logs a fallback to random weights.

    The handler sits on the root logger, where timm's and open_clip's records arrive (transformers'
    logger does not propagate: its loads are checked with `check_loading_info`).
    """
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
    if handler.messages:
        raise RandomInitError(f"{what} was asked for pretrained weights but got random init: {handler.messages[0]}")


def check_loading_info(what: str, info: Mapping[str, Sequence[str]]) -> None:
    """transformers' `output_loading_info`: any weight missing from the checkpoint stayed random."""
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:3]) + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else "")
        raise RandomInitError(f"{what} was asked for pretrained weights but got random init: missing {shown}")
