"""`experiments`: the grid of runs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from taxvlm.settings.base import Section

Names = Annotated[list[str], Field(min_length=1)]
CONDITION = r"^(none|full|random\d+(pair)?|systematic\d+)$"


class Block(Section):
    """One block of the grid: the product of its lists. The runs are the union of all blocks, so adding
    a seed to a block adds exactly that seed's jobs."""

    encoders: Names = Field(description="encoder ids")
    lms: Names = Field(description="LM ids")
    inits: Annotated[list[Literal["pretrained", "random"]], Field(min_length=1)] = Field(
        description="`pretrained` and/or `random` (the LM's random-init twin, the chance level of every contrast)"
    )
    conditions: Annotated[list[Annotated[str, Field(pattern=CONDITION)]], Field(min_length=1)] = Field(
        description="deprivation conditions (see `conditions`)"
    )
    shuffles: Annotated[list[Literal["original", "across", "within"]], Field(min_length=1)] = Field(
        description="`original`; `across`/`within`: the image-label controls (docs/protocol.md)"
    )
    objectives: Annotated[list[Literal["yesno", "caption"]], Field(min_length=1)] = Field(
        ["yesno"],
        description="what the projector trains on: `yesno`, the forced-choice questions (the paper); `caption`, "
        "LiMBeR's captions (`[image] A picture of` → the caption + EOS, the loss on the caption tokens only)",
    )
    seeds: Annotated[list[int], Field(min_length=1)] = Field(
        description="training seeds (data order and projector init; the twin is fixed per LM)"
    )
