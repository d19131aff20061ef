"""The learning criterion: a run's validation table scored while it trains (`val_curve.tsv`).

Learning criterion: with a validation table (`val_leaf.tsv`: leaf questions on validation images,
trained questions on unseen images and never a held-out hypernym), the run scores it after every
`val_every` epochs and writes `val_curve.tsv`: the table training length and learning rate are chosen
on, and the evidence that a run learned its task. Columns `accuracy` and `yes_rate` are under the
run's own readout rule, `pair_accuracy` is how often the positive's raw score beats its matched
negative's on the same image:
- `yesno`: accuracy and yes rate under the absolute rule, on the Yes−No margins;
- `caption` (**decision**): leaf naming by likelihood (`taxvlm.evaluation.scoring.naming_frame`): accuracy and
  yes rate under `paired_calibrated`, the readout that cancels each name's prior; pair accuracy on
  the raw log-likelihoods. The names' no-image likelihoods are computed once (the LM is frozen).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from taxvlm.evaluation.decision import absolute, pair_id
from taxvlm.io import read_tsv
from taxvlm.models.lms import PromptFormat, build_prompt
from taxvlm.evaluation.scoring import naming_frame, naming_phrases, score_questions
from taxvlm.specs import TrainingSetup

VAL_BATCH_SIZE = 64
VAL_COLUMNS = ["step", "epoch", "n", "accuracy", "pair_accuracy", "yes_rate"]


def validation_scores(
    model: nn.Module,
    prompt: PromptFormat,
    projector: nn.Module,
    feats: torch.Tensor,
    index: dict[str, int],
    table: pd.DataFrame,
    batch_size: int,
) -> dict[str, float]:
    """Accuracy (absolute rule), pair accuracy (the positive's margin beats its matched negative's)
    and the share of Yes answers on a validation table; the projector is left in train mode."""
    projector.eval()
    logp_yes, logp_no = score_questions(
        model, prompt, projector, feats, [index[i] for i in table["image_id"]], list(table["text"]), batch_size
    )
    projector.train()
    frame = table.assign(
        test_set="val", pair=table["question_id"].map(pair_id), margin=(logp_yes - logp_no).numpy()
    )
    by_pair = frame.pivot_table(index=["image_id", "pair"], columns="answer", values="margin").dropna()
    return {
        "n": len(frame),
        "accuracy": float((absolute(frame["margin"]) == frame["answer"]).mean()),
        "pair_accuracy": float((by_pair["Yes"] > by_pair["No"]).mean()),
        "yes_rate": float((absolute(frame["margin"]) == "Yes").mean()),
    }


def naming_validation_scores(
    model: nn.Module,
    tokenizer: Any,
    projector: nn.Module,
    feats: torch.Tensor,
    index: dict[str, int],
    table: pd.DataFrame,
    phrases: dict[tuple[str, str], str],
    batch_size: int,
    noimage: dict[str, float],
) -> dict[str, float]:
    """Leaf naming on a validation table (module docstring: the caption objective's criterion):
    accuracy and Yes share under `paired_calibrated`, pair accuracy on the raw log-likelihoods;
    `noimage` caches each name's no-image likelihood; the projector is left in train mode."""
    projector.eval()
    frame = naming_frame(model, tokenizer, projector, feats, index, {"val": table}, phrases, batch_size, noimage)
    projector.train()
    by_pair = frame.pivot_table(index=["image_id", "pair"], columns="answer", values="margin").dropna()
    calibrated = frame["prediction_paired_calibrated"]
    return {
        "n": len(frame),
        "accuracy": float((calibrated == frame["answer"]).mean()),
        "pair_accuracy": float((by_pair["Yes"] > by_pair["No"]).mean()),
        "yes_rate": float((calibrated == "Yes").mean()),
    }


def validation_scorer(
    spec: TrainingSetup,
    concepts_tsv: Path | None,
    model: nn.Module,
    tokenizer: Any,
    projector: nn.Module,
    feats: torch.Tensor,
    index: dict[str, int],
    table: pd.DataFrame,
) -> Callable[[], dict[str, float]] | None:
    """The objective's validation scoring of `table` (module docstring), or None without a table."""
    if table.empty:
        return None
    if spec.objective == "yesno":
        prompt = build_prompt(tokenizer, spec.lm.spec.chat_template)
        return lambda: validation_scores(model, prompt, projector, feats, index, table, VAL_BATCH_SIZE)
    if concepts_tsv is None:
        raise ValueError("the caption objective's validation (leaf naming) needs concepts_tsv for the leaf names")
    phrases = naming_phrases(read_tsv(concepts_tsv), pd.DataFrame(columns=["hypernym", "question_form", "article"]))
    noimage: dict[str, float] = {}
    return lambda: naming_validation_scores(
        model, tokenizer, projector, feats, index, table, phrases, VAL_BATCH_SIZE, noimage
    )
