"""`training`: how a projector trains. `TrainingSpec` is one run's resolved settings (a training
rule's `training` param); `Training` adds what schedules runs rather than defines one."""

from __future__ import annotations

from typing import Literal

from typing import Self

from pydantic import ConfigDict, Field, model_validator

from taxvlm.grid import NOT_RUN_SETTINGS
from taxvlm.settings.base import Section, derive, optional

FeatureNorm = Literal["none", "standardize"]


class Override(Section):
    """Settings for the runs of one objective and/or init; its keys replace the block's for the runs it
    selects. At least two keys: what it selects and what it sets."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 2})

    objective: Literal["yesno", "caption"] | None = optional("selects the runs of this objective (absent: every)")
    init: Literal["pretrained", "random"] | None = optional("selects the runs of this init (absent: every)")
    lr: float | None = optional("sets `training.lr`", gt=0)
    epochs: float | None = optional("sets `training.epochs`", gt=0)
    feature_norm: FeatureNorm | None = optional("sets `training.feature_norm`")
    weight_decay: float | None = optional("sets `training.weight_decay`", ge=0)
    warmup_fraction: float | None = optional("sets `training.warmup_fraction`", ge=0, le=1)

    @model_validator(mode="after")
    def _selects_and_sets(self) -> Self:
        if len(self.model_fields_set) < 2:
            raise ValueError("an override names what it selects and what it sets (at least two keys)")
        return self


class Training(Section):
    """How every projector trains. The defaults are the paper's (AdamW 1e-3, no weight decay, 3 %
    warm-up then cosine, 5 epochs, batch 16, clip 1.0, raw features); a preset chooses its own on the
    validation split with `snakemake tune` (`tuning`)."""

    projector: Literal["mlp", "linear"] = Field("mlp", description="`mlp` as in the paper, `linear` as in LiMBeR")
    prefix_tokens: int = Field(4, ge=1, description="k soft tokens for a pooled feature")
    feature_norm: FeatureNorm = Field(
        "none",
        description="`standardize`: subtract the training images' per-dimension feature mean and divide by the std "
        "before the projector (the statistics saved in projector.pt, so evaluation applies the same transform); "
        "`none`: raw features (the paper's and LiMBeR's recipe)",
    )
    lr: float = Field(1.0e-3, gt=0, description="AdamW's learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW's weight decay")
    warmup_fraction: float = Field(0.03, ge=0, le=1, description="linear warm-up share of the steps, then cosine")
    epochs: float = Field(5, gt=0, description="training length (a fraction of an epoch allowed)")
    batch_size: int = Field(16, ge=1, description="training rows (or a fused group's rows per member) per step")
    overrides: list[Override] = Field(
        [],
        description="settings for the runs of one objective and/or init (as `snakemake tune` chooses them, one per "
        "objective and init; each item needs a selector and a setting); each item's settings replace the keys above "
        "for the runs it selects, an LM's own items apply after the global ones, and a later item after an earlier one",
    )
    grad_clip: float = Field(1.0, gt=0, description="gradient norm clip")
    checkpoint_every: int = Field(200, ge=1, description="steps between resume states (a killed job resumes from it)")
    val_every: float = Field(
        1,
        ge=0,
        description="epochs between scorings of the validation leaf questions along training (`val_curve.tsv`: "
        "accuracy, pair accuracy, share of Yes; the untrained step 0 always scored); 0 = only at the end",
    )
    eval_every: float = Field(
        0,
        ge=0,
        description="keep the projector every `eval_every` `eval_every_unit`s (and at the end) in `checkpoints.pt`; "
        "the evaluation scores each kept point (`predictions_by_step.tsv`, `analysis/dynamics.tsv`); 0 = only the "
        "end. No kept point is ever used to pick a model. Changing it reruns training",
    )
    eval_every_unit: Literal["epochs", "steps"] = Field("epochs", description="the unit of `eval_every`")
    batching: Literal["rows", "images"] = Field(
        "rows",
        description="`rows`: i.i.d. batches of question rows (a seeded permutation); `images`: each image's rows "
        "consecutive in the epoch order, so a batch holds a few images with all their rows, run packed (one "
        "sequence per image: its prefix once, then its rows' suffixes under a block attention mask; one LM pass). "
        "An LM whose attention takes no such mask trains with rows instead (one logged warning; the batching that "
        "ran is in `train_config.json`)",
    )
    fuse: int = Field(
        1,
        ge=1,
        description="the most runs one job trains together (same encoder, LM, init, objective and seed; one LM "
        "forward/backward of their stacked batches per step); 1 = one job per run. Not part of a run's identity; "
        "changing it regroups (and reruns) the LM's training jobs",
    )
    fuse_memory_gib: float | None = Field(
        None,
        gt=0,
        description="activation budget (GiB) of one LM pass of a fused job: its members are stepped in sub-stacks of "
        "at most floor(budget / one member's estimated activations), at least 1 (`taxvlm.training.memory`); null = "
        "all members in one stack. Not part of a run's identity; a param of the fused jobs",
    )
    compile: Literal["none", "default", "reduce-overhead"] = Field(
        "none",
        description="`none`: eager (the reference); `default`: the frozen LM's decoder forward through torch.compile "
        "(inductor) on bucketed shapes (`taxvlm.models.compiled`); `reduce-overhead`: the same replayed as CUDA "
        "graphs on a GPU (untested on a GPU; on a CPU the same as `default`). Applies to the training step and its "
        "validation scoring. Part of a run's identity (compiled numerics differ from eager by rounding): changing "
        "it reruns the runs",
    )


TrainingSpec = derive(
    Training,
    "TrainingSpec",
    "One run's training settings: the rule's `training` param, which `taxvlm.config.training_config` resolves "
    "(the global block, the LM's and the matching `overrides`) without the keys that are no run's setting "
    "(`taxvlm.grid.NOT_RUN_SETTINGS`); such a key here is an unknown key.",
    drop=NOT_RUN_SETTINGS,
)

TrainingOverrides = derive(
    Training,
    "TrainingOverrides",
    "An LM's own training settings: any key of `training`, none filled by default.",
    optional=True,
)
