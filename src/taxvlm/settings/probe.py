"""`probe`: layer-wise linear probes of trained yes/no runs (docs/protocol.md §15)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from taxvlm.settings.base import Section, optional, section


class ProbeRuns(Section):
    """Which yes/no runs are probed: each key a list of values, an absent key selects all (a value
    matching no run is an error)."""

    encoders: list[str] | None = optional("encoder ids probed")
    lms: list[str] | None = optional("LM ids probed")
    inits: list[Literal["pretrained", "random"]] | None = optional("inits probed")
    conditions: list[str] | None = optional("conditions probed")
    shuffles: list[Literal["original", "across", "within"]] | None = optional("shuffles probed")
    seeds: list[int] | None = optional("seeds probed")


class Probe(Section):
    """Linear probes on the hidden states of every LM layer of trained yes/no runs: where in the LM
    the taxonomic information lives, and whether a held-out hypernym is linearly readable even where
    the LM answers it wrongly (config/README.md, `probe`)."""

    enabled: bool = Field(True, description="`false` leaves the stage out of `all`")
    runs: ProbeRuns = section(ProbeRuns, "default: every yes/no run of `experiments`")
    positions: list[Literal["answer", "target", "image"]] = Field(
        ["answer", "target", "image"],
        min_length=1,
        description="`answer`: the last prompt token (where Yes/No is read); `target`: the last token of the "
        "question's target word (found from `questions.template`'s text after `{name}`); `image`: the mean over "
        "the k image-prefix positions (per image)",
    )
    tasks: list[Literal["entailment", "transfer", "leaf", "membership"]] = Field(
        ["entailment", "transfer", "leaf", "membership"],
        min_length=1,
        description="`entailment` (Yes/No of every test question), `leaf` (which leaf), `membership` (per hypernym, across concepts), `transfer` (seen members → held-out members); config/README.md, `probe`",
    )
    folds: int = Field(3, ge=2, description="outer (membership) and inner (C) CV folds")
    Cs: list[Annotated[float, Field(gt=0)]] = Field(
        [0.01, 0.1, 1.0],
        min_length=1,
        description="inverse regularisation strengths the inner CV chooses from (log loss)",
    )
    max_iter: int = Field(200, ge=1, description="lbfgs iterations per fit")
    max_train_rows: int = Field(
        2000,
        ge=1,
        description="seeded subsample of the training question rows cached per run (images are never subsampled)",
    )
    max_test_rows: int | None = Field(
        None, ge=1, description="seeded subsample of the test question rows cached per run (null = all)"
    )
    keep_states: bool = Field(
        True,
        description="keep each run's hidden-state cache after the fit (false = Snakemake `temp()`, deleted once fitted)",
    )
    margin_tolerance: float = Field(
        0.05, ge=0, description="largest median |margin difference| to predictions.tsv before a run counts as changed"
    )
    seed: int = Field(0, description="subsamples, outer folds and control labels")
    threads: int = Field(2, ge=1, description="processes of the probe fit job (one (run, layer) per task)")
