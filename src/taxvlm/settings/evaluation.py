"""`evaluation` and `compute`: how trained runs are scored, and what each job asks of the machine."""

from __future__ import annotations

from pydantic import Field

from taxvlm.settings.base import Section


class Evaluation(Section):
    """How each trained run is scored: yes/no questions (`yesno` runs), naming (every run), captions
    (`caption` runs)."""

    batch_size: int = Field(
        64, ge=1, description="questions per batch of forced-choice scoring (also the text upper bound's)"
    )
    caption_max_new_tokens: int = Field(
        24, ge=1, description="greedy decoding length of the captioning evaluation (caption runs)"
    )
    naming: bool = Field(
        True,
        description='naming by likelihood for every run (`naming.tsv`): log P(" {article} {name}" | image, '
        '"A picture of") of each matched positive vs negative, with and without the image',
    )


class Compute(Section):
    """What jobs ask for. On SLURM (`profiles/slurm`) a job with GPUs goes to the GPU partition, with
    host memory and runtime from its model's size (`taxvlm.placement`); the partitions and account are
    site values from the environment, not config keys."""

    gpus_per_job: int = Field(
        0, ge=0, description="GPUs requested by feature, training, evaluation and probe-state jobs (0 on a CPU)"
    )
    feature_batch_size: int = Field(32, ge=1, description="images per batch of feature extraction")
    feature_threads: int = Field(
        4, ge=1, description="threads of a feature-extraction job (capped by `--cores` locally)"
    )
    train_threads: int = Field(1, ge=1, description="torch threads per training, evaluation and probe job")
