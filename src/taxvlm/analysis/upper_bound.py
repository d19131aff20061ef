"""The text upper bound of every readout (docs/protocol.md §12): the VLM's own prompt and scoring on
every hypernym question, with the leaf named in words where the image tokens go.

If the LM cannot answer "Is there a bird in this image?" even when the image is replaced by the words
`a blackbird.`, no image result under that readout can show transfer: this bounds what the projector
could at best hand over. Unlike the text probes (`taxvlm.analysis.textprobe`: the chat template,
other phrasings, pooled spellings) nothing here differs from the VLM but the image tokens.

- **Text** (**decision**): the leaf's naming phrase (`taxvlm.evaluation.scoring.naming_phrases`: article + surface
  form from concepts.tsv, e.g. `a blackbird`, `jeans`) followed by a period, tokenized on its own
  without special tokens, exactly where `splice` puts the image: after `PromptFormat.head` for yes/no
  (BOS, the text's first token `Question` when the tokenizer adds no BOS, or the chat template's user
  turn opening when the LM spec says `chat_template`), after `caption_prompt`'s head for naming. The
  pieces around it are the VLM's token ids unchanged, so no space or newline is added on either side.
- **Readouts**: `yesno`, log P(Yes) − log P(No) after `[head] [text] Question: … Answer:`, with
  `score_without_image` for the calibration (the VLM's no-image margin, by construction: the same
  function); `naming`, log P(` {article} {name}` | `[head] [text] A picture of`) of the asked hypernym
  by its question form, with `score_continuations_without_image` (through `naming_frame`).
- **Same code path**: the LM's input embeddings stand in for the projector (`TextStandIn`) and the
  leaf's token ids for its features, so `score_questions` and `naming_frame` splice, share prefixes and
  score exactly as on an image. The text's length varies by leaf while a batch of images shares
  one length, so leaves are scored in groups of equal token count.

Rows: every hypernym question of questions.tsv under `yesno` (a positive without a matched foil keeps
its absolute prediction under every rule, as in predictions.tsv); under `naming` only matched pairs
(as in naming.tsv). Columns: `readout`, then predictions.tsv's (`taxvlm.evaluation.scoring.COLUMNS`) with
`test_set` = `text`, `image_id` = `text:<leaf>`, `row_id` = `<readout>|<question_id>`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
import torch
from torch import nn

from taxvlm.data.errors import read_table
from taxvlm.evaluation.decision import decide, pair_id
from taxvlm.devices import flush_denormals_on_cpu, resolve_device
from taxvlm.io import write_tsv
from taxvlm.models.lms import PromptFormat, build_prompt, load_lm
from taxvlm.evaluation.scoring import COLUMNS, naming_frame, naming_phrases, score_questions, score_without_image
from taxvlm.specs import FrozenLM

log = logging.getLogger(__name__)
UPPER_BOUND_COLUMNS: list[str] = ["readout", *COLUMNS]
READOUTS: tuple[str, ...] = ("yesno", "naming")
TEST_SET = "text"
QUESTION_COLUMNS: tuple[str, ...] = ("question_id", "leaf", "kind", "asked", "answer", "text")


class TextStandIn(nn.Module):
    """The LM's input embeddings in the projector's place: its "features" are token ids (cast to float
    by the scorers, as they cast image features; exact below 2**24), its output their embeddings, so
    the scorers put the text's own embeddings where they put an image's soft tokens."""

    def __init__(self, embeddings: nn.Module) -> None:
        super().__init__()
        vocab = embeddings.weight.shape[0]
        if vocab > 2**24:
            raise ValueError(f"a vocabulary of {vocab} ids does not pass exactly through float32 features")
        self.embeddings = embeddings

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embeddings(ids.round().long())


def leaf_texts(concepts: pd.DataFrame, hypernyms: pd.DataFrame) -> dict[str, str]:
    """leaf → the words standing in for its image: its naming phrase and a period (`a blackbird.`)."""
    phrases = naming_phrases(concepts, hypernyms)
    return {leaf: phrases[("leaf", leaf)] + "." for leaf in concepts["concept"]}


def hypernym_questions(questions: pd.DataFrame) -> pd.DataFrame:
    """The hypernym rows of questions.tsv as one "image" per leaf, with the keys the decision rules
    pair on (`test_set`, `image_id`, `pair`)."""
    rows = questions.loc[questions["kind"] == "hypernym", list(QUESTION_COLUMNS)].reset_index(drop=True)
    return rows.assign(test_set=TEST_SET, image_id="text:" + rows["leaf"], pair=rows["question_id"].map(pair_id))


def _length_groups(
    rows: pd.DataFrame, text_ids: Mapping[str, list[int]]
) -> Iterator[tuple[pd.DataFrame, torch.Tensor, dict[str, int]]]:
    """(rows, the leaves' token ids `[n, k]`, image_id → row of those ids) per text length k."""
    lengths = rows["leaf"].map(lambda leaf: len(text_ids[leaf]))
    for _, part in rows.groupby(lengths, sort=True):
        leaves = sorted(set(part["leaf"]))
        ids = torch.tensor([text_ids[leaf] for leaf in leaves], dtype=torch.long)
        yield part, ids, {f"text:{leaf}": i for i, leaf in enumerate(leaves)}


def yesno_rows(
    model: nn.Module,
    prompt: PromptFormat,
    rows: pd.DataFrame,
    text_ids: Mapping[str, list[int]],
    batch_size: int,
) -> pd.DataFrame:
    """predictions.tsv's columns for `rows` (`hypernym_questions`), the leaf's text as the image."""
    standin = TextStandIn(model.get_input_embeddings())
    parts = []
    for part, ids, index in _length_groups(rows, text_ids):
        image_index = [index[i] for i in part["image_id"]]
        logp_yes, logp_no = score_questions(model, prompt, standin, ids, image_index, list(part["text"]), batch_size)
        parts.append(part.assign(logp_yes=logp_yes.numpy(), logp_no=logp_no.numpy()))
    scored = pd.concat(parts).sort_index()
    texts = sorted(set(scored["text"]))
    yes_noimage, no_noimage = score_without_image(model, prompt, texts, batch_size)
    margin_noimage = pd.Series((yes_noimage - no_noimage).numpy(), index=texts)
    scored = scored.assign(
        row_id="yesno|" + scored["question_id"],
        margin=scored["logp_yes"] - scored["logp_no"],
        margin_noimage=scored["text"].map(margin_noimage),
    )
    return decide(scored)[COLUMNS]


def naming_rows(
    model: nn.Module,
    tokenizer: Any,
    rows: pd.DataFrame,
    text_ids: Mapping[str, list[int]],
    phrases: dict[tuple[str, str], str],
    batch_size: int,
) -> pd.DataFrame:
    """naming.tsv's columns for the matched pairs of `rows`, the leaf's text as the image."""
    standin = TextStandIn(model.get_input_embeddings())
    rows = rows.assign(row_id="naming|" + rows["question_id"])
    noimage: dict[str, float] = {}  # each name's no-image log-likelihood, scored once across groups
    parts = [
        naming_frame(model, tokenizer, standin, ids, index, {TEST_SET: part}, phrases, batch_size, noimage)
        for part, ids, index in _length_groups(rows, text_ids)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)


def upper_bound_frame(
    model: nn.Module,
    tokenizer: Any,
    chat_template: bool,
    concepts: pd.DataFrame,
    hypernyms: pd.DataFrame,
    questions: pd.DataFrame,
    batch_size: int,
) -> pd.DataFrame:
    """Both readouts' rows (module docstring), sorted by `row_id`."""
    rows = hypernym_questions(questions)
    if rows.empty:
        return pd.DataFrame(columns=UPPER_BOUND_COLUMNS)
    texts = leaf_texts(concepts, hypernyms)
    text_ids = {leaf: tokenizer(text, add_special_tokens=False)["input_ids"] for leaf, text in texts.items()}
    prompt = build_prompt(tokenizer, chat_template)
    leaf = rows["leaf"].iloc[0]
    log.info("yes/no prompt %s; e.g. leaf %s's text %r = %s", prompt.describe(), leaf, texts[leaf], text_ids[leaf])
    frames = {
        "yesno": yesno_rows(model, prompt, rows, text_ids, batch_size),
        "naming": naming_rows(model, tokenizer, rows, text_ids, naming_phrases(concepts, hypernyms), batch_size),
    }
    frame = pd.concat([f.assign(readout=readout) for readout, f in frames.items()], ignore_index=True)
    return frame.sort_values("row_id", ignore_index=True)[UPPER_BOUND_COLUMNS]


def upper_bound_job(
    lm: FrozenLM,
    inputs: Mapping[str, str | os.PathLike[str]],
    batch_size: int,
    output: str | os.PathLike[str],
) -> pd.DataFrame:
    """The `upper_bound` rule: load the LM (pretrained or the VLM runs' random-init twin) on the GPU
    when there is one, score both readouts, write `output`. `inputs`: `concepts`, `hypernyms`,
    `questions` tables. bf16 autocast on a GPU, as the evaluation scores."""
    dev = resolve_device("auto")
    flush_denormals_on_cpu(dev)
    model, tokenizer = load_lm(lm, dev)
    concepts = read_table(inputs["concepts"], ["concept", "name", "article"])
    hypernyms = read_table(inputs["hypernyms"], ["hypernym", "question_form", "article"])
    questions = read_table(inputs["questions"], QUESTION_COLUMNS)
    t0 = time.perf_counter()
    with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
        frame = upper_bound_frame(model, tokenizer, lm.spec.chat_template, concepts, hypernyms, questions, batch_size)
    log.info(
        "scored %s rows in %.1fs on %s",
        frame["readout"].value_counts().reindex(list(READOUTS), fill_value=0).to_dict(),
        time.perf_counter() - t0,
        dev,
    )
    write_tsv(frame, output)
    return frame
