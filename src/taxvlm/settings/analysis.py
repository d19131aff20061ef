"""`analysis`: the text-only probes and the held-out contrasts."""

from __future__ import annotations

from pydantic import Field

from taxvlm.settings.base import Section, optional, section


class TextProbe(Section):
    """Text-only taxonomy probes of the LMs on the dataset's own matched pairs (`questions.tsv`), so
    text and image results pair item by item; the chat template is used whenever the tokenizer has one,
    and `Yes`/`yes` and `No`/`no` are pooled."""

    lms: list[str] | None = optional(description="LMs probed in text (default: every LM of `lms`; [] = none)")
    yesno: list[str] | None = optional(description="yes/no phrasing names (default all)")
    caption: list[str] | None = optional(description="caption phrasing names (default all)")
    minimal_pairs: list[str] | None = optional(description="minimal-pair phrasing names (default all)")
    max_pairs: int | None = optional(nullable=True, ge=1, description="cap on matched pairs probed")
    seed: int = Field(0, description="seed of the `max_pairs` subsample")
    batch_size: int = Field(32, ge=1, description="texts per batch")


class Bootstrap(Section):
    """The hierarchical bootstrap of every held-out contrast (`taxvlm.analysis.contrasts`): categories,
    leaves within them and seeds resampled, each level from its own stream. Verdicts come from the CI of
    a difference (pretrained − twin, pretrained − null, original − shuffle), never from overlapping CIs."""

    draws: int = Field(10000, ge=1000, description="bootstrap draws per contrast")
    seed: int = Field(0, description="seed of the bootstrap's draws")


class Analysis(Section):
    """Aggregation of the runs into tables, figures and the held-out contrasts."""

    textprobe: TextProbe = section(TextProbe)
    require_twin: bool = Field(
        True,
        description="refuse a grid in which an unshuffled pretrained run has no random-init twin (or a shuffled run "
        "no unshuffled pretrained run): its held-out contrast could not be formed",
    )
    bootstrap: Bootstrap = section(Bootstrap)
