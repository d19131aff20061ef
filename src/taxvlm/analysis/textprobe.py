"""Text-only taxonomy probes of a frozen LM (docs/protocol.md §12): does the LM know the hypernyms?

Every probe uses the dataset's own matched hypernym questions from `questions.tsv`: each positive
(leaf, h) is paired with the negative (leaf, h⁻) that the VLM is asked on the same image (the row
whose `target` is h), so text and image results pair item by item. A positive without a matched
negative (a leaf that belongs to nearly every hypernym) is left out.

Probe families:
(a) `yesno`: "Is it true that an owl is a bird?" in several phrasings, a Yes item (leaf, h) and a No
    item (leaf, h⁻) per pair.
(b) `caption`: the VLM's own question (`questions.tsv` `text`) with the image replaced by a caption,
    `This is an owl.\nQuestion: Is there a bird in this image? Answer:`.
(c) `minimal_pair`: total log-likelihood of the true sentence ("An owl is a bird.") against the foil
    ("An owl is a tool."); the first token has no context to be scored from, so it is left out.

Prompts (**decision**): the tokenizer's chat template whenever it has one (a user turn, then
the generation prompt), whatever the VLM's `chat_template` flag, since a chat-tuned LM answers
questions best in its own format; otherwise `Question: … Answer:` after BOS when the tokenizer adds one.
The Yes score pools the answer's spellings: log P(Yes) = logsumexp over the distinct first tokens of
`Yes` and `yes` (with a leading space in the plain format, none after a chat generation prompt; `yes`
only where it is one token), and likewise No; an LM that prefers lower case is not scored as if it
said neither.

Decision rules (column `rule` of the summary), on margin = log P(Yes) − log P(No):
- `absolute` (the paper's): Yes iff margin > 0; per item, with macro-F1 over Yes/No.
- `paired`: the true item's margin must beat its foil's; per pair.
- `paired_calibrated` (`caption` only): the same on margin − the margin of the same question without
  the caption, which removes what the question words alone say;
- `paired_prior` (`caption` only): the paired rule on the no-caption margins alone: the part of the
  answer the hypernym word decides without the leaf, the baseline the calibrated rule removes.
- `likelihood` (`minimal_pair`): the true sentence must be the more likely.

Accuracies carry Wilson 95% intervals: unlike the normal approximation they stay inside [0, 1] and
behave near 0 and 1, where small per-hypernym groups live. `n` counts items for `absolute` and pairs
for the paired rules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.special import logsumexp
from statsmodels.stats.proportion import proportion_confint

from taxvlm.analysis.metrics import RUN_KEYS, category_scores
from taxvlm.analysis.stats import correlations
from taxvlm.data import lexicon
from taxvlm.data.errors import read_table
from taxvlm.devices import resolve_device
from taxvlm.io import write_tsv
from taxvlm.models.lms import load_lm
from taxvlm.progress import Progress
from taxvlm.seeding import rng
from taxvlm.settings.analysis import TextProbe
from taxvlm.specs import FrozenLM

# Fields: leaf / hyp (bare names), a_leaf / a_hyp (with article), leaves / hyps (plural).
YESNO_PHRASINGS: dict[str, str] = {
    "is_it_true": "Is it true that {a_leaf} is {a_hyp}?",
    "plural": "Are {leaves} {hyps}?",
    "type_of": "Is {a_leaf} a type of {hyp}?",
}
CAPTION_PHRASINGS: dict[str, str] = {"this_is": "This is {a_leaf}."}
MINIMAL_PAIR_PHRASINGS: dict[str, str] = {
    "is_a": "{a_leaf} is {a_hyp}.",
    "kind_of": "{a_leaf} is a kind of {hyp}.",
    "plural": "{leaves} are {hyps}.",
    "cloze": "This is {a_leaf}. It is a kind of {hyp}.",
}
ITEM_COLUMNS: tuple[str, ...] = (
    "probe",
    "phrasing",
    "leaf",
    "hypernym",
    "foil",
    "asked",
    "answer",
    "text",
    "foil_text",
    "logp_yes",
    "logp_no",
    "margin_no_context",
    "logp_true",
    "logp_foil",
    "prediction",
    "correct",
)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "probe",
    "phrasing",
    "rule",
    "scope",
    "hypernym",
    "n",
    "n_correct",
    "accuracy",
    "ci_low",
    "ci_high",
    "macro_f1",
)
PAIR_KEYS: tuple[str, ...] = ("probe", "phrasing", "leaf", "hypernym", "foil")
ANSWER_SPELLINGS: dict[str, tuple[str, ...]] = {"Yes": ("Yes", "yes"), "No": ("No", "no")}
# the paired rules of each yes/no-style probe → the score `paired_outcomes` compares
PAIRED_RULES: dict[str, dict[str, str | None]] = {
    "yesno": {"paired": None},
    "caption": {"paired": None, "paired_calibrated": "calibrated", "paired_prior": "prior"},
}


def _with_article(name: str, article: str) -> str:
    return f"{article} {name}" if article else name


def surface_forms(concepts: pd.DataFrame, hypernyms: pd.DataFrame) -> tuple[dict[str, dict], dict[str, dict]]:
    """Template fields of every leaf (concepts.tsv) and hypernym (hypernyms.tsv: the question form
    and its article, the words the VLM's questions use, e.g. `part of car` → `a car part`).

    A name without an article (a mass or plural noun: `jeans`, `food`) is already its own plural; others
    take inflect's (`lexicon.plural`: `mouse` → `mice`); a `plural` column in concepts.tsv, when
    present, overrides both for leaves.
    """
    leaves = {}
    for row in concepts.itertuples(index=False):
        plural = getattr(row, "plural", "") or (row.name if not row.article else lexicon.plural(row.name))
        leaves[row.concept] = {"leaf": row.name, "a_leaf": _with_article(row.name, row.article), "leaves": plural}
    forms = {}
    for row in hypernyms.itertuples(index=False):
        name = row.question_form
        forms[row.hypernym] = {
            "hyp": name,
            "a_hyp": _with_article(name, row.article),
            "hyps": name if not row.article else lexicon.plural(name),
        }
    return leaves, forms


def matched_pairs(questions: pd.DataFrame, seed: int, max_pairs: int | None = None) -> pd.DataFrame:
    """(leaf, hypernym, foil, text, foil_text) of every positive hypernym question with its matched
    negative (same leaf, `target` = the positive); `text`/`foil_text` are the VLM's question texts.
    `max_pairs` takes a seeded subsample (for quick checks of large taxonomies)."""
    hypernym = questions[questions["kind"] == "hypernym"]
    positives = hypernym[hypernym["answer"] == "Yes"][["leaf", "target", "text"]]
    negatives = hypernym[hypernym["answer"] == "No"][["leaf", "target", "asked", "text"]]
    table = (
        positives.merge(negatives, on=["leaf", "target"], suffixes=("", "_foil"), validate="1:1")
        .rename(columns={"target": "hypernym", "asked": "foil", "text_foil": "foil_text"})
        .sort_values(["leaf", "hypernym"], ignore_index=True)[["leaf", "hypernym", "foil", "text", "foil_text"]]
    )
    if max_pairs is not None and len(table) > max_pairs:
        keep = np.sort(rng(seed, "textprobe", "subsample").choice(len(table), max_pairs, replace=False))
        table = table.iloc[keep].reset_index(drop=True)
    return table


@dataclass(frozen=True)
class TextPrompt:
    """How a question is put to the LM without an image (module docstring), and the pooled answers."""

    tokenizer: Any
    chat: bool
    yes_ids: tuple[int, ...]
    no_ids: tuple[int, ...]

    def ids(self, question: str, context: str = "") -> list[int]:
        """Token ids of `question`, preceded by `context` on its own line, ready for the answer."""
        if self.chat:
            content = f"{context}\n{question}" if context else question
            turn = [{"role": "user", "content": content}]
            text = self.tokenizer.apply_chat_template(
                turn, add_generation_prompt=True, tokenize=False, enable_thinking=False
            )
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        text = f"Question: {question} Answer:"
        return self.tokenizer(f"{context}\n{text}" if context else text)["input_ids"]

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of the format (for the log)."""
        return {"chat": self.chat, "yes_ids": list(self.yes_ids), "no_ids": list(self.no_ids)}


def _answer_tokens(tokenizer: Any, prefix: str, spellings: Sequence[str]) -> tuple[int, ...]:
    """Distinct first tokens of the spellings: always the first (canonical) one's, as the VLM scores
    it; another only when it is a whole token, since a first piece (e.g. a bare space) would pool
    every word that starts with it."""
    tokens = [tokenizer(prefix + word, add_special_tokens=False)["input_ids"] for word in spellings]
    return tuple(dict.fromkeys([tokens[0][0], *(t[0] for t in tokens[1:] if len(t) == 1)]))


def text_prompt(tokenizer: Any) -> TextPrompt:
    """The chat format when the tokenizer has a chat template, else the plain one; fails if the Yes
    and No spellings share a token."""
    chat = getattr(tokenizer, "chat_template", None) is not None
    prefix = "" if chat else " "
    yes = _answer_tokens(tokenizer, prefix, ANSWER_SPELLINGS["Yes"])
    no = _answer_tokens(tokenizer, prefix, ANSWER_SPELLINGS["No"])
    if set(yes) & set(no):
        raise ValueError(f"Yes/yes {yes} and No/no {no} share a first token; forced choice is impossible")
    return TextPrompt(tokenizer, chat, yes, no)


def _render(template: str, fields: Mapping[str, str]) -> str:
    text = template.format(**fields)
    return text[:1].upper() + text[1:]


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches of similar length (less padding); results are put back in input order."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _pad(sequences: Sequence[list[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad with id 0 (never attended: the attention mask is 0 there) on the left or the right."""
    width = max(map(len, sequences))
    ids = torch.zeros(len(sequences), width, dtype=torch.long)
    mask = torch.zeros(len(sequences), width, dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[row, span], mask[row, span] = torch.tensor(seq), 1
    return ids, mask


@torch.inference_mode()
def answer_logprobs(model, sequences: Sequence[list[int]], answer_ids: Sequence[int], batch_size: int) -> np.ndarray:
    """log P(answer_ids[k] | sequence) at each sequence's end, shape [n, len(answer_ids)].

    Left padding puts every sequence's last real token in the last column, so only that column's
    logits are computed (`logits_to_keep=1`); position ids count real tokens only, so a padded row
    sees exactly the positions it would see alone.
    """
    out = np.empty((len(sequences), len(answer_ids)))
    for index in Progress(_batches([len(s) for s in sequences], batch_size), desc="textprobe", unit="batch"):
        ids, mask = _pad([sequences[i] for i in index], left=True)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        device = _device(model)
        logits = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            logits_to_keep=1,
        ).logits[:, -1]
        out[index] = logits.float().log_softmax(dim=-1)[:, list(answer_ids)].cpu().numpy()
    return out


def yes_no_logprobs(model, prompt: TextPrompt, sequences: Sequence[list[int]], batch_size: int) -> np.ndarray:
    """Pooled [log P(Yes), log P(No)] per sequence, shape [n, 2]."""
    logp = answer_logprobs(model, sequences, [*prompt.yes_ids, *prompt.no_ids], batch_size)
    k = len(prompt.yes_ids)
    return np.stack([logsumexp(logp[:, :k], axis=1), logsumexp(logp[:, k:], axis=1)], axis=1)


@torch.inference_mode()
def sequence_logprobs(model, sequences: Sequence[list[int]], batch_size: int) -> np.ndarray:
    """Σ_{i≥1} log P(t_i | t_<i) of each sequence (right padding; padded targets masked out)."""
    out = np.empty(len(sequences))
    for index in Progress(_batches([len(s) for s in sequences], batch_size), desc="textprobe", unit="batch"):
        ids, mask = _pad([sequences[i] for i in index], left=False)
        device = _device(model)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1]
        token_logp = logits.float().log_softmax(dim=-1).gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
        out[index] = (token_logp * mask[:, 1:].to(device)).sum(dim=1).cpu().numpy()
    return out


def _question_items(probe: str, phrasing: str, pairs: pd.DataFrame, texts: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """A Yes item (asking the pair's hypernym) and a No item (asking its foil) per pair."""
    rows = [
        {"probe": probe, "phrasing": phrasing, "leaf": p.leaf, "hypernym": p.hypernym, "foil": p.foil}
        | {"asked": asked, "answer": answer, "text": text, "foil_text": ""}
        for p, (true_text, foil_text) in zip(pairs.itertuples(index=False), texts)
        for asked, answer, text in ((p.hypernym, "Yes", true_text), (p.foil, "No", foil_text))
    ]
    return pd.DataFrame(rows, columns=list(ITEM_COLUMNS[:9]))


def _absolute(items: pd.DataFrame, logp: np.ndarray, margin_no_context: np.ndarray | float) -> pd.DataFrame:
    prediction = np.where(logp[:, 0] > logp[:, 1], "Yes", "No")
    return items.assign(
        logp_yes=logp[:, 0],
        logp_no=logp[:, 1],
        margin_no_context=margin_no_context,
        logp_true=np.nan,
        logp_foil=np.nan,
        prediction=prediction,
        correct=(prediction == items["answer"]).astype(int),
    )


def yesno_items(
    model,
    prompt: TextPrompt,
    pairs: pd.DataFrame,
    leaves: dict,
    hypernyms: dict,
    phrasings: Sequence[str],
    batch_size: int,
) -> pd.DataFrame:
    """Probe (a): every phrasing of each pair's Yes and No item."""
    frames = []
    for phrasing in phrasings:
        template = YESNO_PHRASINGS[phrasing]
        texts = [
            (
                _render(template, leaves[p.leaf] | hypernyms[p.hypernym]),
                _render(template, leaves[p.leaf] | hypernyms[p.foil]),
            )
            for p in pairs.itertuples(index=False)
        ]
        frames.append(_question_items("yesno", phrasing, pairs, texts))
    items = pd.concat(frames, ignore_index=True)
    logp = yes_no_logprobs(model, prompt, [prompt.ids(text) for text in items["text"]], batch_size)
    return _absolute(items, logp, np.nan)


def caption_items(
    model, prompt: TextPrompt, pairs: pd.DataFrame, leaves: dict, phrasings: Sequence[str], batch_size: int
) -> pd.DataFrame:
    """Probe (b): the VLM's question texts after a caption naming the leaf, and each question's margin
    without the caption (computed once per distinct question text)."""
    texts = list(zip(pairs["text"], pairs["foil_text"]))
    questions = sorted({text for pair in texts for text in pair})
    bare = yes_no_logprobs(model, prompt, [prompt.ids(q) for q in questions], batch_size)
    bare_margin = dict(zip(questions, bare[:, 0] - bare[:, 1]))
    frames = []
    for phrasing in phrasings:
        items = _question_items("caption", phrasing, pairs, texts)
        captions = [_render(CAPTION_PHRASINGS[phrasing], leaves[leaf]) for leaf in items["leaf"]]
        sequences = [prompt.ids(text, caption) for text, caption in zip(items["text"], captions)]
        logp = yes_no_logprobs(model, prompt, sequences, batch_size)
        frames.append(_absolute(items, logp, items["text"].map(bare_margin).to_numpy()))
    return pd.concat(frames, ignore_index=True)


def minimal_pair_items(
    model, tokenizer, pairs: pd.DataFrame, leaves: dict, hypernyms: dict, phrasings: Sequence[str], batch_size: int
) -> pd.DataFrame:
    """Probe (c): the true sentence against the foil sentence, per pair and phrasing."""
    rows = [
        {"probe": "minimal_pair", "phrasing": phrasing, "leaf": p.leaf, "hypernym": p.hypernym, "foil": p.foil}
        | {
            "asked": p.hypernym,
            "answer": "true",
            "text": _render(MINIMAL_PAIR_PHRASINGS[phrasing], leaves[p.leaf] | hypernyms[p.hypernym]),
            "foil_text": _render(MINIMAL_PAIR_PHRASINGS[phrasing], leaves[p.leaf] | hypernyms[p.foil]),
        }
        for phrasing in phrasings
        for p in pairs.itertuples(index=False)
    ]
    items = pd.DataFrame(rows, columns=list(ITEM_COLUMNS[:9]))
    encoded = [tokenizer(text)["input_ids"] for text in (*items["text"], *items["foil_text"])]
    logp = sequence_logprobs(model, encoded, batch_size).reshape(2, len(items))
    prediction = np.where(logp[0] > logp[1], "true", "foil")
    return items.assign(
        logp_yes=np.nan,
        logp_no=np.nan,
        margin_no_context=np.nan,
        logp_true=logp[0],
        logp_foil=logp[1],
        prediction=prediction,
        correct=(prediction == "true").astype(int),
    )


def paired_outcomes(items: pd.DataFrame, calibration: str | None) -> pd.DataFrame:
    """Per pair (PAIR_KEYS): `correct` = the Yes item's score beats its No item's. The score is the
    margin (`calibration` None), the margin minus the no-caption margin (`calibrated`) or the
    no-caption margin alone (`prior`)."""
    margin = items["logp_yes"] - items["logp_no"]
    score = {None: margin, "calibrated": margin - items["margin_no_context"], "prior": items["margin_no_context"]}
    wide = items.assign(score=score[calibration]).pivot(index=list(PAIR_KEYS), columns="answer", values="score")
    return (wide["Yes"] > wide["No"]).astype(int).rename("correct").reset_index()


def _summary_row(correct: pd.Series, macro_f1: float, **keys: str) -> dict:
    n, n_correct = len(correct), int(correct.sum())
    low, high = proportion_confint(n_correct, n, alpha=0.05, method="wilson")
    return keys | {
        "n": n,
        "n_correct": n_correct,
        "accuracy": n_correct / n,
        "ci_low": float(low),
        "ci_high": float(high),
        "macro_f1": macro_f1,
    }


def summarize(items: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (Wilson CI) per probe × phrasing × rule and pooled over phrasings (`all`); for the
    absolute rule also macro-F1 overall and per hypernym asked about (scope `hypernym`)."""
    rows = []
    for probe, by_probe in items.groupby("probe", sort=True):
        for phrasing, group in [*by_probe.groupby("phrasing", sort=True), ("all", by_probe)]:
            keys = {"probe": probe, "phrasing": phrasing, "scope": "all", "hypernym": ""}
            if probe == "minimal_pair":
                rows.append(_summary_row(group["correct"], np.nan, **keys, rule="likelihood"))
                continue
            f1 = category_scores(group["answer"], group["prediction"])["macro_f1"]
            rows.append(_summary_row(group["correct"], f1, **keys, rule="absolute"))
            rows += [
                _summary_row(
                    g["correct"],
                    category_scores(g["answer"], g["prediction"])["macro_f1"],
                    **(keys | {"scope": "hypernym", "hypernym": h}),
                    rule="absolute",
                )
                for h, g in group.groupby("asked", sort=True)
            ]
            for rule, calibration in PAIRED_RULES[probe].items():
                # as item predictions (Yes for the higher score, No for the other) a pair is one TP and
                # one TN or one FP and one FN, so macro-F1 over Yes/No equals the accuracy
                correct = paired_outcomes(group, calibration)["correct"]
                rows.append(_summary_row(correct, correct.mean(), **keys, rule=rule))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def run_textprobe(
    model,
    tokenizer,
    concepts_tsv: str | os.PathLike[str],
    hypernyms_tsv: str | os.PathLike[str],
    questions_tsv: str | os.PathLike[str],
    probe: TextProbe,
    batch_size: int,
) -> tuple[pd.DataFrame, pd.DataFrame, TextPrompt]:
    """Every probe of one (model, tokenizer) on the dataset's matched pairs → (items, summary, prompt):
    the phrasings `probe` names (absent: all of a family; [] none), on its seeded `max_pairs` subsample."""
    phrasings = {}
    for key, known in (
        ("yesno", YESNO_PHRASINGS),
        ("caption", CAPTION_PHRASINGS),
        ("minimal_pairs", MINIMAL_PAIR_PHRASINGS),
    ):
        named = getattr(probe, key)
        phrasings[key] = list(known) if named is None else named
        unknown = sorted(set(phrasings[key]) - set(known))
        if unknown:
            raise ValueError(f"analysis.textprobe.{key}: unknown phrasing(s) {unknown}; known: {sorted(known)}")
    questions = read_table(questions_tsv, ["leaf", "kind", "asked", "answer", "text", "target"])
    leaves, hypernyms = surface_forms(
        read_table(concepts_tsv, ["concept", "name", "article"]),
        read_table(hypernyms_tsv, ["hypernym", "question_form", "article"]),
    )
    pairs = matched_pairs(questions, probe.seed, probe.max_pairs)
    prompt = text_prompt(tokenizer)
    model.eval()
    families = []
    if phrasings["yesno"]:
        families.append(yesno_items(model, prompt, pairs, leaves, hypernyms, phrasings["yesno"], batch_size))
    if phrasings["caption"]:
        families.append(caption_items(model, prompt, pairs, leaves, phrasings["caption"], batch_size))
    if phrasings["minimal_pairs"]:
        families.append(
            minimal_pair_items(model, tokenizer, pairs, leaves, hypernyms, phrasings["minimal_pairs"], batch_size)
        )
    items = pd.concat(families, ignore_index=True)
    return items, summarize(items), prompt


def write_textprobe(
    items: pd.DataFrame,
    summary: pd.DataFrame,
    labels: Mapping[str, str],
    items_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
) -> None:
    """Write both tables with `labels` (e.g. lm, init) as leading columns, so files concatenate."""
    for table, path in ((items, items_path), (summary, summary_path)):
        write_tsv(table.assign(**labels)[[*labels, *table.columns]], path)


def textprobe_correlations(
    summary: pd.DataFrame, metrics: pd.DataFrame, test_sets: Sequence[str] = ("unseen",)
) -> pd.DataFrame:
    """Per run and VLM decision rule: correlation of the LM's per-hypernym text macro-F1 (yes/no,
    absolute rule, all phrasings) with the VLM's per-category macro-F1, matching the run's own LM and
    init."""
    text = summary[
        (summary["probe"] == "yesno")
        & (summary["rule"] == "absolute")
        & (summary["phrasing"] == "all")
        & (summary["scope"] == "hypernym")
    ]
    text = text[["lm", "init", "hypernym", "macro_f1"]].rename(
        columns={"hypernym": "category", "macro_f1": "text_macro_f1"}
    )
    joined = metrics[metrics["test_set"].isin(test_sets)].merge(
        text.astype({"text_macro_f1": float}), on=["lm", "init", "category"]
    )
    return correlations(joined, "text_macro_f1", "macro_f1", by=[*RUN_KEYS, "readout", "rule", "test_set"])


def textprobe_job(
    lm: FrozenLM,
    inputs: Mapping[str, str | os.PathLike[str]],
    probe: TextProbe,
    labels: Mapping[str, str],
    outputs: Mapping[str, str | os.PathLike[str]],
) -> tuple[pd.DataFrame, pd.DataFrame, TextPrompt]:
    """The `textprobe` rule: load the LM (pretrained or its VLM runs' random-init twin) on the
    GPU when there is one, run every probe, write `outputs` (`per_item`, `summary`) with `labels` as
    leading columns. `inputs`: `concepts`, `hypernyms`, `questions` tables."""
    model, tokenizer = load_lm(lm, resolve_device("auto"))
    items, summary, prompt = run_textprobe(
        model, tokenizer, inputs["concepts"], inputs["hypernyms"], inputs["questions"], probe,
        probe.batch_size,
    )  # fmt: skip
    write_textprobe(items, summary, labels, outputs["per_item"], outputs["summary"])
    return items, summary, prompt
