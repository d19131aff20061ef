"""The evaluation jobs of a trained projector: forced-choice Yes/No on the test sets (predictions.tsv)
and naming by likelihood (naming.tsv). The scoring itself lives in `taxvlm.evaluation.scoring`.

Yes/No: log P(Yes) vs log P(No) at the answer position. Fast path (`score_questions`), exact up to float rounding: questions are sorted by image; per batch
the shared prefix `[head] [image tokens] [the question tokens every question starts with]` runs once
per distinct image (`shared_prefix_forward`), and only the remaining question tokens run per question.
The LM head and a full-vocabulary log-softmax are computed at one position per question (prediction =
Yes iff log P(Yes) > log P(No); a tie → No). `score_questions_reference` is the plain
one-forward-per-question baseline the tests compare against.

For the calibrated decision rule (`taxvlm.evaluation.decision`), every distinct question text is also scored once
with the image tokens left out (`score_without_image`: `[head] [question text]`, the same prompt
format), and predictions.tsv carries the prediction of every rule.

Along training (`training.eval_every`): the same scoring of every projector state the training kept
(`checkpoints.pt`), written to predictions_by_step.tsv. The no-image margins do not depend on the
projector and are computed once; the last kept point is the projector itself, so its rows are
predictions.tsv's. These points describe the training; the run's result stays its final projector.

Naming by likelihood (`name_projector`, either training objective; LiMBeR's prompt, see
`taxvlm.models.lms.caption_prompt`): every row of the test tables asks about a name (its `asked`: the
leaf, or a hypernym by its question form), and its score is log P(` {article} {name}` | `[head]
[image] A picture of`), the summed log-probability of the name's tokens (no period, no end token).
The same continuation after `[head] A picture of` without the image is scored once per distinct
name. naming.tsv has the columns of predictions.tsv with `margin` = the log-likelihood with the image
and `margin_noimage` = without it (`logp_yes`/`logp_no` are empty), so `decide` gives the `paired`
rule (which of the positive and its matched negative is more likely on the image) and
`paired_calibrated` (the same after subtracting each name's likelihood without the image, which
cancels word frequency). The `absolute` rule has no meaning for a likelihood (`prediction` is empty),
and rows without a pair partner on their image are left out (logged): naming compares two names.
Fast path: the image prefix `[head][image][prompt]` runs once per image (`shared_prefix_forward`) and
the LM head only at the name's positions (`continuation_logits`, which the training loss shares).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from taxvlm.evaluation.decision import decide, pair_id, pair_sizes
from taxvlm.devices import flush_denormals_on_cpu, resolve_device
from taxvlm.io import load_pt, read_tsv, write_tsv
from taxvlm.models.lms import PromptFormat, build_prompt
from taxvlm.progress import Progress
from taxvlm.evaluation.runs import LoadedRun, load_run
from taxvlm.evaluation.scoring import COLUMNS, naming_frame, naming_phrases, score_questions, score_without_image
from taxvlm.specs import TrainedRun

log = logging.getLogger(__name__)
BY_STEP_COLUMNS = ["step", "epoch", *COLUMNS]


def evaluate_projector(
    run: TrainedRun,
    test_tables: dict[str, Path],
    batch_size: int,
    out_path: Path,
    device: str = "auto",
    checkpoints_path: Path | None = None,
    by_step_path: Path | None = None,
) -> None:
    """Score every row of the test tables (keys `seen`/`unseen`/`leaf`/`null`) and write predictions.tsv.

    The run's LM is the one it was trained through (the random twin is fixed per LM); its init and
    seed must match what `projector.pt` was trained with. With `checkpoints_path` (the run's kept
    points, `taxvlm.training.kept_points`), every kept point is scored the same way into `by_step_path`
    (`step`, `epoch` + the columns of predictions.tsv); the last point must be the projector itself, and
    its rows are predictions.tsv's.
    """
    dev = resolve_device(device)
    flush_denormals_on_cpu(dev)
    loaded = load_run(run, dev)
    prompt = build_prompt(loaded.tokenizer, run.lm.spec.chat_template)
    tables = {name: table for name, path in test_tables.items() if not (table := read_tsv(path)).empty}
    if tables:
        predictions, by_step = _score_run(loaded, prompt, tables, batch_size, run.projector, checkpoints_path)
    else:
        predictions, by_step = pd.DataFrame(columns=COLUMNS), pd.DataFrame(columns=BY_STEP_COLUMNS)
    write_tsv(predictions, out_path)
    if by_step_path is not None:
        write_tsv(by_step, by_step_path)


def _score_run(
    loaded: LoadedRun,
    prompt: PromptFormat,
    tables: dict[str, pd.DataFrame],
    batch_size: int,
    projector_path: Path,
    checkpoints_path: Path | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predictions.tsv's rows, every kept point's rows) of a loaded run (`evaluate_projector`)."""
    model, projector, feats, index = loaded.model, loaded.projector, loaded.feats, loaded.index
    dev = next(projector.parameters()).device
    t0 = time.perf_counter()
    with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
        texts = sorted({text for table in tables.values() for text in table["text"]})
        yes_noimage, no_noimage = score_without_image(model, prompt, texts, batch_size)
        margin_noimage = pd.Series((yes_noimage - no_noimage).numpy(), index=texts)

        def score() -> pd.DataFrame:
            return _predictions(model, prompt, projector, feats, index, tables, margin_noimage, batch_size)

        predictions = score()
        seconds = time.perf_counter() - t0
        by_step = _score_kept_points(checkpoints_path, projector_path, projector, predictions, score)
    log.info(
        "scored %d questions (%d texts without the image) in %.1fs (%.1f questions/s) on %s; %d rows have no "
        "pair partner on their image and keep the absolute prediction under every rule",
        len(predictions),
        len(texts),
        seconds,
        len(predictions) / max(seconds, 1e-9),
        dev,
        int((pair_sizes(predictions) == 1).sum()),
    )
    return predictions, by_step


def _predictions(
    model: nn.Module,
    prompt: PromptFormat,
    projector: nn.Module,
    feats: torch.Tensor,
    index: dict[str, int],
    tables: dict[str, pd.DataFrame],
    margin_noimage: pd.Series,
    batch_size: int,
) -> pd.DataFrame:
    """predictions.tsv's rows for the projector's current state (`margin_noimage` by question text)."""
    frames = []
    for name, table in tables.items():
        logp_yes, logp_no = score_questions(
            model, prompt, projector, feats, [index[i] for i in table["image_id"]], list(table["text"]), batch_size
        )
        frames.append(
            table.assign(
                test_set=name,
                pair=table["question_id"].map(pair_id),
                logp_yes=logp_yes.numpy(),
                logp_no=logp_no.numpy(),
                margin=(logp_yes - logp_no).numpy(),
                margin_noimage=table["text"].map(margin_noimage),
            )
        )
    return decide(pd.concat(frames, ignore_index=True))[COLUMNS]


def _score_kept_points(
    checkpoints_path: Path | None,
    projector_path: Path,
    projector: nn.Module,
    final: pd.DataFrame,
    score: Callable[[], pd.DataFrame],
) -> pd.DataFrame:
    """Every kept point's rows (`step`, `epoch` first): `score()` after loading each earlier point into
    `projector`, and `final` for the last point, which must equal projector.pt (else the run's files
    come from different trainings). The projector ends in its final state again."""
    if checkpoints_path is None:
        return pd.DataFrame(columns=BY_STEP_COLUMNS)
    points = load_pt(checkpoints_path)["points"]
    final_state = load_pt(projector_path)["state_dict"]
    last = points[-1]
    if any(not torch.equal(last["state_dict"][k], v) for k, v in final_state.items()):
        raise ValueError(f"the last point of {checkpoints_path} (step {last['step']}) is not {projector_path}")
    frames = []
    for point in Progress(points[:-1], desc="kept points", unit="point"):
        projector.load_state_dict(point["state_dict"])
        frames.append(score().assign(step=point["step"], epoch=point["epoch"]))
    projector.load_state_dict(final_state)
    frames.append(final.assign(step=last["step"], epoch=last["epoch"]))
    log.info("scored %d kept points at steps %s", len(points), [p["step"] for p in points])
    return pd.concat(frames, ignore_index=True)[BY_STEP_COLUMNS]


def name_projector(
    run: TrainedRun,
    test_tables: dict[str, Path],
    concepts_path: Path,
    hypernyms_path: Path,
    batch_size: int,
    out_path: Path,
    device: str = "auto",
) -> None:
    """Naming by likelihood (module docstring) on the test tables (keys `seen`/`unseen`/`leaf`/`null`) →
    naming.tsv; the run's init and seed must match what `projector.pt` was trained with."""
    dev = resolve_device(device)
    flush_denormals_on_cpu(dev)
    loaded = load_run(run, dev)
    phrases = naming_phrases(read_tsv(concepts_path), read_tsv(hypernyms_path))
    tables = {name: table for name, path in test_tables.items() if not (table := read_tsv(path)).empty}
    n_rows = sum(len(table) for table in tables.values())
    t0 = time.perf_counter()
    with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
        naming = (
            naming_frame(
                loaded.model, loaded.tokenizer, loaded.projector, loaded.feats, loaded.index, tables, phrases,
                batch_size,
            )  # fmt: skip
            if tables
            else pd.DataFrame(columns=COLUMNS)
        )
    log.info(
        "named %d rows in %.1fs on %s; %d rows without a pair partner on their image left out",
        len(naming),
        time.perf_counter() - t0,
        dev,
        n_rows - len(naming),
    )
    write_tsv(naming, out_path)
