"""Text-only taxonomy probes of a frozen LM (protocol §7; issue 8): does the LM know the hypernyms?

Both probes use the dataset's own (leaf, hypernym) pairs, each matched with one seeded negative
("foil") hypernym the leaf does not belong to, so true and false items are balanced.

(a) `yesno`: the question is asked in several phrasings; the answer is Yes iff log P(Yes) > log P(No)
    at the answer position — the same forced choice the VLM makes, in the VLM's own prompt format
    (`taxvlm.models.lms.build_prompt`: plain `Question: … Answer:` or the LM's chat template) with no
    image, so the probe measures what the frozen LM brings to the VLM.
(b) `minimal_pair`: total log-likelihood of the true sentence ("An owl is a bird.") against the foil
    ("An owl is a tool."); correct iff the true one is more likely. Both sentences share their first
    token, which has no context to be scored from, so it is left out of both sums.

Accuracies carry Wilson 95% intervals: unlike the normal approximation they stay inside [0, 1] and
behave near 0 and 1, where small per-hypernym groups live.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from statsmodels.stats.proportion import proportion_confint

from taxvlm.analysis.metrics import RUN_KEYS, category_scores
from taxvlm.analysis.stats import correlations
from taxvlm.io import read_tsv, write_tsv
from taxvlm.models.lms import build_prompt
from taxvlm.seeding import rng

# Fields: leaf / hyp (bare names), a_leaf / a_hyp (with article), leaves / hyps (plural).
YESNO_PHRASINGS: dict[str, str] = {
    "is_it_true": "Is it true that {a_leaf} is {a_hyp}?",
    "plural": "Are {leaves} {hyps}?",
    "type_of": "Is {a_leaf} a type of {hyp}?",
}
MINIMAL_PAIR_PHRASINGS: dict[str, str] = {
    "is_a": "{a_leaf} is {a_hyp}.",
    "kind_of": "{a_leaf} is a kind of {hyp}.",
    "plural": "{leaves} are {hyps}.",
}
DEFAULT_PROBE_CFG: dict = {
    "yesno": list(YESNO_PHRASINGS),
    "minimal_pairs": list(MINIMAL_PAIR_PHRASINGS),
    "max_pairs": None,
}
ITEM_COLUMNS: tuple[str, ...] = (
    "probe",
    "phrasing",
    "leaf",
    "hypernym",
    "foil",
    "answer",
    "text",
    "foil_text",
    "logp_yes",
    "logp_no",
    "logp_true",
    "logp_foil",
    "prediction",
    "correct",
)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "probe",
    "phrasing",
    "scope",
    "hypernym",
    "n",
    "n_correct",
    "accuracy",
    "ci_low",
    "ci_high",
    "macro_f1",
)


def _plural(name: str) -> str:
    """Regular English plural; approximate (no irregulars), used only by the plural phrasings."""
    if name.endswith(("s", "x", "z", "ch", "sh")):
        return name + "es"
    if len(name) > 1 and name.endswith("y") and name[-2] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def _with_article(name: str, article: str) -> str:
    return f"{article} {name}" if article else name


def _hypernym_article(name: str) -> str:
    """Hypernyms have no lexicon entry; first-letter a/an is right for the common category nouns."""
    return "an" if name[:1].lower() in "aeiou" else "a"


def surface_forms(concepts: pd.DataFrame, pairs: pd.DataFrame) -> tuple[dict[str, dict], dict[str, dict]]:
    """Template fields of every leaf (from concepts.tsv) and hypernym (underscores read as spaces).

    A leaf without an article (mass or plural noun, e.g. `jeans`) is already its own plural; a
    `plural` column in concepts.tsv, when present, overrides the rule.
    """
    leaves = {}
    for row in concepts.itertuples(index=False):
        plural = getattr(row, "plural", "") or (row.name if not row.article else _plural(row.name))
        leaves[row.concept] = {"leaf": row.name, "a_leaf": _with_article(row.name, row.article), "leaves": plural}
    hypernyms = {}
    for hypernym in sorted(pairs["hypernym"].unique()):
        name = hypernym.replace("_", " ")
        hypernyms[hypernym] = {
            "hyp": name,
            "a_hyp": _with_article(name, _hypernym_article(name)),
            "hyps": _plural(name),
        }
    return leaves, hypernyms


def probe_pairs(pairs: pd.DataFrame, seed: int, max_pairs: int | None = None) -> pd.DataFrame:
    """(leaf, hypernym, foil) for every positive pair; the foil is drawn per pair from its own stream.

    Foils are drawn in proportion to how often each hypernym is a true one, so true and foil
    hypernyms have the same mix: a uniform draw lets a model that only knows which hypernyms are
    frequent (the random-init floor included) beat chance. Keying the draw on (leaf, hypernym)
    keeps each foil fixed when other pairs are added or dropped. `max_pairs` takes a seeded
    subsample (for quick checks of large taxonomies).
    """
    frequency = pairs["hypernym"].value_counts().sort_index()
    members = pairs.groupby("concept")["hypernym"].agg(set)
    rows = []
    for leaf, hypernym in sorted(pairs[["concept", "hypernym"]].drop_duplicates().itertuples(index=False)):
        candidates = frequency[~frequency.index.isin(members[leaf])]
        if len(candidates):
            weights = candidates.to_numpy(dtype=float) / candidates.sum()
            draw = rng(seed, "textprobe", "foil", leaf, hypernym).choice(len(candidates), p=weights)
            foil = candidates.index[draw]
            rows.append({"leaf": leaf, "hypernym": hypernym, "foil": foil})
    table = pd.DataFrame(rows, columns=["leaf", "hypernym", "foil"])
    if max_pairs is not None and len(table) > max_pairs:
        keep = np.sort(rng(seed, "textprobe", "subsample").choice(len(table), max_pairs, replace=False))
        table = table.iloc[keep].reset_index(drop=True)
    return table


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
    for index in _batches([len(s) for s in sequences], batch_size):
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


@torch.inference_mode()
def sequence_logprobs(model, sequences: Sequence[list[int]], batch_size: int) -> np.ndarray:
    """Σ_{i≥1} log P(t_i | t_<i) of each sequence (right padding; padded targets masked out)."""
    out = np.empty(len(sequences))
    for index in _batches([len(s) for s in sequences], batch_size):
        ids, mask = _pad([sequences[i] for i in index], left=False)
        device = _device(model)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1]
        token_logp = logits.float().log_softmax(dim=-1).gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
        out[index] = (token_logp * mask[:, 1:].to(device)).sum(dim=1).cpu().numpy()
    return out


def yesno_items(
    model,
    tokenizer,
    triples: pd.DataFrame,
    leaves: dict,
    hypernyms: dict,
    phrasings: Sequence[str],
    chat_template: bool,
    batch_size: int,
) -> pd.DataFrame:
    """Probe (a): a Yes item (leaf, hypernym) and a No item (leaf, foil) per pair and phrasing, in the
    VLM's own prompt format with the image left out."""
    prompt = build_prompt(tokenizer, chat_template)
    rows = [
        {
            "probe": "yesno",
            "phrasing": phrasing,
            "leaf": t.leaf,
            "hypernym": asked,
            "foil": "",
            "answer": answer,
            "text": _render(YESNO_PHRASINGS[phrasing], leaves[t.leaf] | hypernyms[asked]),
            "foil_text": "",
        }
        for phrasing in phrasings
        for t in triples.itertuples(index=False)
        for asked, answer in ((t.hypernym, "Yes"), (t.foil, "No"))
    ]
    items = pd.DataFrame(rows, columns=list(ITEM_COLUMNS[:8]))
    sequences = [prompt.head + prompt.question_ids(text) for text in items["text"]]
    logp = answer_logprobs(model, sequences, prompt.choice_ids, batch_size)
    items = items.assign(
        logp_yes=logp[:, 0],
        logp_no=logp[:, 1],
        logp_true=np.nan,
        logp_foil=np.nan,
        prediction=np.where(logp[:, 0] > logp[:, 1], "Yes", "No"),
    )
    return items.assign(correct=(items["prediction"] == items["answer"]).astype(int))


def minimal_pair_items(
    model, tokenizer, triples: pd.DataFrame, leaves: dict, hypernyms: dict, phrasings: Sequence[str], batch_size: int
) -> pd.DataFrame:
    """Probe (b): the true sentence against the foil sentence, per pair and phrasing."""
    rows = [
        {
            "probe": "minimal_pair",
            "phrasing": phrasing,
            "leaf": t.leaf,
            "hypernym": t.hypernym,
            "foil": t.foil,
            "answer": "true",
            "text": _render(MINIMAL_PAIR_PHRASINGS[phrasing], leaves[t.leaf] | hypernyms[t.hypernym]),
            "foil_text": _render(MINIMAL_PAIR_PHRASINGS[phrasing], leaves[t.leaf] | hypernyms[t.foil]),
        }
        for phrasing in phrasings
        for t in triples.itertuples(index=False)
    ]
    items = pd.DataFrame(rows, columns=list(ITEM_COLUMNS[:8]))
    encoded = [tokenizer(text)["input_ids"] for text in (*items["text"], *items["foil_text"])]
    logp = sequence_logprobs(model, encoded, batch_size).reshape(2, len(items))
    items = items.assign(
        logp_yes=np.nan,
        logp_no=np.nan,
        logp_true=logp[0],
        logp_foil=logp[1],
        prediction=np.where(logp[0] > logp[1], "true", "foil"),
    )
    return items.assign(correct=(items["prediction"] == items["answer"]).astype(int))


def _summary_row(group: pd.DataFrame, **keys: str) -> dict:
    n, n_correct = len(group), int(group["correct"].sum())
    low, high = proportion_confint(n_correct, n, alpha=0.05, method="wilson")
    macro_f1 = category_scores(group["answer"], group["prediction"])["macro_f1"] if keys["probe"] == "yesno" else np.nan
    return keys | {
        "n": n,
        "n_correct": n_correct,
        "accuracy": n_correct / n,
        "ci_low": float(low),
        "ci_high": float(high),
        "macro_f1": macro_f1,
    }


def summarize(items: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (Wilson CI) per probe × phrasing and pooled over phrasings (`all`); for the yes/no
    probe also macro-F1 overall and per hypernym asked about (scope `hypernym`)."""
    rows = []
    for probe, by_probe in items.groupby("probe", sort=True):
        for phrasing, group in [*by_probe.groupby("phrasing", sort=True), ("all", by_probe)]:
            rows.append(_summary_row(group, probe=probe, phrasing=phrasing, scope="all", hypernym=""))
            if probe == "yesno":
                rows += [
                    _summary_row(g, probe=probe, phrasing=phrasing, scope="hypernym", hypernym=h)
                    for h, g in group.groupby("hypernym", sort=True)
                ]
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def run_textprobe(
    model,
    tokenizer,
    concepts_tsv: str | os.PathLike[str],
    pairs_tsv: str | os.PathLike[str],
    probe_cfg: Mapping,
    seed: int,
    chat_template: bool,
    batch_size: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both probes of one (model, tokenizer) on the dataset's pairs → (items, summary).

    `probe_cfg` keys (defaults in DEFAULT_PROBE_CFG): `yesno` and `minimal_pairs` (phrasing names),
    `max_pairs` (seeded subsample, or None for all); other keys are ignored.
    """
    cfg = DEFAULT_PROBE_CFG | dict(probe_cfg)
    pairs = read_tsv(pairs_tsv)
    leaves, hypernyms = surface_forms(read_tsv(concepts_tsv), pairs)
    triples = probe_pairs(pairs, seed, cfg["max_pairs"])
    model.eval()
    items = pd.concat(
        [
            yesno_items(model, tokenizer, triples, leaves, hypernyms, cfg["yesno"], chat_template, batch_size),
            minimal_pair_items(model, tokenizer, triples, leaves, hypernyms, cfg["minimal_pairs"], batch_size),
        ],
        ignore_index=True,
    )
    return items, summarize(items)


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
    """Per run: correlation of the LM's per-hypernym text macro-F1 (yes/no, all phrasings) with the
    VLM's per-category macro-F1, matching the run's own LM and init."""
    text = summary[(summary["probe"] == "yesno") & (summary["phrasing"] == "all") & (summary["scope"] == "hypernym")]
    text = text[["lm", "init", "hypernym", "macro_f1"]].rename(
        columns={"hypernym": "category", "macro_f1": "text_macro_f1"}
    )
    joined = metrics[metrics["test_set"].isin(test_sets)].merge(
        text.astype({"text_macro_f1": float}), on=["lm", "init", "category"]
    )
    return correlations(joined, "text_macro_f1", "macro_f1", by=[*RUN_KEYS, "test_set"])
