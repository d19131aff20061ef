"""Decision rules: how the Yes−No margins of the forced choice become Yes/No answers.

`margin` = log P(Yes) − log P(No) of a question on an image; `margin_noimage` = the same question's
margin with the image tokens left out (a property of the LM and the question text alone).

- `absolute` (the paper's rule): Yes iff margin > 0 (a tie → No).
- `paired`: every positive question (leaf, target) and its matched negative on the same image form a
  pair; the one with the larger margin gets Yes, the other No. This asks which of two names fits the
  image better, so a uniform bias towards Yes cancels, but word priors (a frequent hypernym's higher
  margin on every image) do not.
- `paired_calibrated`: the same on margin − margin_noimage, which removes each question text's
  image-independent prior: the rule that can show knowledge rather than priors.

The same paired rules read naming by likelihood (naming.tsv, `taxvlm.evaluation.readouts`), where `margin` is the
name's log-likelihood after the image and `margin_noimage` its log-likelihood without it
(`NAMING_RULES`: no absolute rule there).

Pairs come from questions.tsv, never re-drawn here: a question id is `<leaf>:<kind>:<target>:<answer>`
and a negative carries its positive's leaf, kind and target, so `pair` = the id without the answer.
A pair's two rows are always in the same test set and on the same images (removal drops a negative
with its positive, and both are attached to the images of the same leaf). In a pair, a tie gives No
to both (as the absolute rule's tie does). A row without a partner on its image (a leaf with fewer
negative hypernyms than positive ones) keeps its absolute prediction under every rule; predictions
carry `pair` so that these rows can be counted (`metrics.n_unpaired`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RULES: tuple[str, ...] = ("absolute", "paired", "paired_calibrated")
# Naming by likelihood (`taxvlm.evaluation.readouts`) compares two names; a likelihood has no absolute threshold.
NAMING_RULES: tuple[str, ...] = ("paired", "paired_calibrated")
PREDICTION_COLUMNS: dict[str, str] = {
    "absolute": "prediction",
    "paired": "prediction_paired",
    "paired_calibrated": "prediction_paired_calibrated",
}
PAIR_KEYS: tuple[str, ...] = ("test_set", "image_id", "pair")


def pair_id(question_id: str) -> str:
    """`<leaf>:<kind>:<target>` of a question id `<leaf>:<kind>:<target>:<answer>`."""
    pair, _, answer = question_id.rpartition(":")
    if not pair or answer not in ("Yes", "No"):
        raise ValueError(f"question_id {question_id!r} is not '<leaf>:<kind>:<target>:<Yes|No>'")
    return pair


def absolute(margin: pd.Series) -> pd.Series:
    """Yes iff log P(Yes) > log P(No)."""
    return pd.Series(np.where(margin > 0, "Yes", "No"), index=margin.index)


def pair_sizes(frame: pd.DataFrame) -> pd.Series:
    """Rows in each row's pair on its image (1 = no partner); more than 2 is an error."""
    sizes = frame.groupby(list(PAIR_KEYS), sort=False)["pair"].transform("size")
    if (sizes > 2).any():
        bad = frame.loc[sizes > 2, list(PAIR_KEYS)].iloc[0].to_dict()
        raise ValueError(f"more than two rows share a pair on one image: {bad}")
    return sizes


def paired(frame: pd.DataFrame, score: pd.Series) -> pd.Series:
    """Yes for the row of each pair whose `score` is strictly larger than its partner's, No otherwise;
    rows without a partner keep the absolute prediction of their margin."""
    sizes = pair_sizes(frame)
    groups = score.groupby([frame[k] for k in PAIR_KEYS], sort=False)
    top, bottom = groups.transform("max"), groups.transform("min")
    decided = np.where((score == top) & (bottom < top), "Yes", "No")
    return pd.Series(np.where(sizes == 2, decided, absolute(frame["margin"])), index=frame.index)


def decide(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (test_set, image_id, pair, margin, margin_noimage) with one prediction column per rule."""
    return frame.assign(
        prediction=absolute(frame["margin"]),
        prediction_paired=paired(frame, frame["margin"]),
        prediction_paired_calibrated=paired(frame, frame["margin"] - frame["margin_noimage"]),
    )
