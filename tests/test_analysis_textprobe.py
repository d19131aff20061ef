"""Text-only probes on a tiny random Llama with an offline byte-level BPE tokenizer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import logsumexp
from tokenizers import ByteLevelBPETokenizer
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from taxvlm.analysis.textprobe import (
    ITEM_COLUMNS,
    SUMMARY_COLUMNS,
    answer_logprobs,
    matched_pairs,
    paired_outcomes,
    run_textprobe,
    sequence_logprobs,
    summarize,
    text_prompt,
    write_textprobe,
    yes_no_logprobs,
)
from taxvlm.io import read_tsv, write_tsv

from spec_builders import section

CONCEPTS = [
    ("owl1", "owl", "an"),
    ("dog", "dog", "a"),
    ("hammer", "hammer", "a"),
    ("apple", "apple", "an"),
    ("jeans", "jeans", ""),
    ("fly", "fly", "a"),
]
# hypernym → (question form, article), as hypernyms.tsv gives them
HYPERNYMS = {
    "animal": ("animal", "an"),
    "bird": ("bird", "a"),
    "clothing": ("item of clothing", "an"),
    "food": ("food", ""),
    "insect": ("insect", "an"),
    "tool": ("tool", "a"),
}
# (leaf, positive hypernym, matched negative or None)
MATCHED = [
    ("owl1", "bird", "tool"),
    ("owl1", "animal", "food"),
    ("dog", "animal", "clothing"),
    ("hammer", "tool", "insect"),
    ("apple", "food", "bird"),
    ("jeans", "clothing", "animal"),
    ("fly", "insect", "tool"),
    ("fly", "animal", None),  # no negative left for this positive: not a probe item
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|user|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _question(leaf: str, hypernym: str, answer: str, asked: str) -> dict:
    form, article = HYPERNYMS[asked]
    text = " ".join(f"Is there {article} {form} in this image?".split())
    return {"question_id": f"{leaf}:hypernym:{hypernym}:{answer}", "leaf": leaf, "kind": "hypernym"} | {
        "asked": asked,
        "answer": answer,
        "text": text,
        "target": hypernym,
    }


def questions_table() -> pd.DataFrame:
    rows = [
        {"question_id": f"{c}:leaf:{c}:Yes", "leaf": c, "kind": "leaf", "asked": c, "answer": "Yes"}
        | {"text": f"Is there a {n} in this image?", "target": c}
        for c, n, _ in CONCEPTS
    ]
    for leaf, hypernym, negative in MATCHED:
        rows.append(_question(leaf, hypernym, "Yes", hypernym))
        if negative:
            rows.append(_question(leaf, hypernym, "No", negative))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tiny_lm():
    corpus = [
        f"Question: Is it true that {a} {n} is a {h}? Answer: Yes No yes no" for _, n, a in CONCEPTS for h in HYPERNYMS
    ]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus, vocab_size=400, min_frequency=1, special_tokens=["<s>", "</s>", "<|user|>", "<|assistant|>"]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.fixture
def data(tmp_path):
    write_tsv(pd.DataFrame(CONCEPTS, columns=["concept", "name", "article"]), tmp_path / "concepts.tsv")
    hypernyms = [(h, form, article) for h, (form, article) in HYPERNYMS.items()]
    write_tsv(pd.DataFrame(hypernyms, columns=["hypernym", "question_form", "article"]), tmp_path / "hypernyms.tsv")
    write_tsv(questions_table(), tmp_path / "questions.tsv")
    return tmp_path / "concepts.tsv", tmp_path / "hypernyms.tsv", tmp_path / "questions.tsv"


def test_batched_scores_equal_unbatched(tiny_lm):
    model, tokenizer = tiny_lm
    texts = ["Is an owl a bird?", "A dog", "Question: Is it true that an apple is a food? Answer:", "Yes"]
    sequences = [tokenizer(t)["input_ids"] for t in texts]
    assert len({len(s) for s in sequences}) > 2  # padding really happens
    answers = [tokenizer(" Yes", add_special_tokens=False)["input_ids"][0], 5]
    batched = answer_logprobs(model, sequences, answers, batch_size=8)
    alone = np.stack([answer_logprobs(model, [s], answers, batch_size=1)[0] for s in sequences])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    batched = sequence_logprobs(model, sequences, batch_size=8)
    alone = np.array([sequence_logprobs(model, [s], batch_size=1)[0] for s in sequences])
    np.testing.assert_allclose(batched, alone, atol=1e-4)


def test_sequence_logprob_is_sum_of_next_token_logprobs(tiny_lm):
    model, tokenizer = tiny_lm
    ids = tokenizer("An owl is a bird.")["input_ids"]
    with torch.inference_mode():
        logp = model(torch.tensor([ids])).logits[0].log_softmax(-1)
    direct = sum(float(logp[i - 1, ids[i]]) for i in range(1, len(ids)))
    assert sequence_logprobs(model, [ids], batch_size=1)[0] == pytest.approx(direct, abs=1e-4)


def test_pairs_are_the_datasets_matched_negatives():
    """Text items pair with the image items: the foil of (leaf, h) is the VLM's own negative for it."""
    pairs = matched_pairs(questions_table(), seed=3)
    expected = sorted((leaf, h, n) for leaf, h, n in MATCHED if n)
    assert sorted(zip(pairs["leaf"], pairs["hypernym"], pairs["foil"])) == expected
    row = pairs.set_index(["leaf", "hypernym"]).loc[("jeans", "clothing")]
    assert (row["text"], row["foil_text"]) == (
        "Is there an item of clothing in this image?",
        "Is there an animal in this image?",
    )
    subsample = matched_pairs(questions_table(), seed=3, max_pairs=3)
    assert len(subsample) == 3 and subsample.equals(matched_pairs(questions_table(), seed=3, max_pairs=3))


@pytest.mark.parametrize("template", [None, CHAT_TEMPLATE])
def test_prompt_follows_the_tokenizer_and_pools_answer_spellings(tiny_lm, template):
    """The chat template is used whenever the tokenizer has one (no flag decides it); Yes pools the
    distinct first tokens of Yes/yes, No those of No/no."""
    model, tokenizer = tiny_lm
    tokenizer.chat_template = template
    prompt = text_prompt(tokenizer)
    ids = prompt.ids("Is there a dog in this image?", "This is a dog.")
    text = tokenizer.decode(ids)
    if template is None:
        assert not prompt.chat and text == "This is a dog.\nQuestion: Is there a dog in this image? Answer:"
    else:
        assert prompt.chat and text == "<|user|>This is a dog.\nIs there a dog in this image?</s><|assistant|>"
    space = "" if template else " "
    yes = [tokenizer(space + w, add_special_tokens=False)["input_ids"][0] for w in ("Yes", "yes")]
    no = [tokenizer(space + w, add_special_tokens=False)["input_ids"][0] for w in ("No", "no")]
    assert prompt.yes_ids == tuple(dict.fromkeys(yes)) and prompt.no_ids == tuple(dict.fromkeys(no))
    assert len(prompt.yes_ids) == 2 and len(prompt.no_ids) == 2  # whole-word tokens in this vocabulary
    with torch.inference_mode():
        logp = model(torch.tensor([ids])).logits[0, -1].log_softmax(-1).numpy()
    pooled = yes_no_logprobs(model, prompt, [ids], batch_size=1)[0]
    np.testing.assert_allclose(pooled, [logsumexp(logp[yes]), logsumexp(logp[no])], atol=1e-5)


def _caption_items(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """Hand-built caption items: (pair leaf, answer, margin with the caption, margin without it)."""
    items = pd.DataFrame(
        [
            {"probe": "caption", "phrasing": "this_is", "leaf": leaf, "hypernym": "h", "foil": "f"}
            | {"asked": "h" if answer == "Yes" else "f", "answer": answer, "logp_yes": margin, "logp_no": 0.0}
            | {"margin_no_context": bare, "prediction": "Yes" if margin > 0 else "No"}
            for leaf, answer, margin, bare in rows
        ]
    )
    return items.assign(correct=(items["prediction"] == items["answer"]).astype(int))


def test_paired_and_calibrated_rules_disagree_with_absolute_and_each_other():
    items = _caption_items(
        [
            ("p1", "Yes", -1.0, 0.0),  # absolute wrong; beats its foil; the words alone favour it
            ("p1", "No", -3.0, -5.0),
            ("p2", "Yes", 2.0, -2.0),  # absolute right; loses to its foil; the words favour the foil
            ("p2", "No", 3.0, 4.0),
            ("p3", "Yes", 1.0, 0.0),  # right under every rule but the words-only one (a tie)
            ("p3", "No", -1.0, 0.0),
        ]
    )
    outcome = {
        rule: paired_outcomes(items, rule).set_index("leaf")["correct"].tolist()
        for rule in (None, "calibrated", "prior")
    }
    assert outcome == {None: [1, 0, 1], "calibrated": [0, 1, 1], "prior": [1, 0, 0]}
    summary = summarize(items)
    overall = summary[summary["scope"] == "all"].set_index(["phrasing", "rule"])
    assert overall.loc[("this_is", "absolute"), ["n", "n_correct"]].tolist() == [6, 4]
    assert overall.loc[("this_is", "paired"), ["n", "n_correct"]].tolist() == [3, 2]
    assert overall.loc[("this_is", "paired_calibrated"), ["n", "n_correct"]].tolist() == [3, 2]
    assert overall.loc[("this_is", "paired_prior"), ["n", "n_correct"]].tolist() == [3, 1]
    assert overall.loc[("this_is", "paired"), "macro_f1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("template", [None, CHAT_TEMPLATE])
def test_run_textprobe_outputs(tiny_lm, data, tmp_path, template):
    model, tokenizer = tiny_lm
    tokenizer.chat_template = template
    probe = section({}, "analysis", "textprobe")
    items, summary, prompt = run_textprobe(model, tokenizer, *data, probe=probe, batch_size=4)
    assert prompt.chat == (template is not None)
    assert list(items.columns) == list(ITEM_COLUMNS) and list(summary.columns) == list(SUMMARY_COLUMNS)
    n_pairs = sum(n is not None for *_, n in MATCHED)
    yesno = items[items["probe"] == "yesno"]
    assert len(yesno) == 3 * 2 * n_pairs and (yesno["answer"] == "Yes").sum() == (yesno["answer"] == "No").sum()
    assert "Is it true that an owl is a bird?" in set(yesno["text"])
    assert "Is it true that an apple is food?" in set(yesno["text"])  # the hypernym's own article (none)
    assert "Are jeans items of clothing?" in set(yesno["text"]) and not items["text"].str.contains("jeanses").any()
    caption = items[items["probe"] == "caption"]
    assert set(caption["text"]) <= set(questions_table()["text"])  # the VLM's own questions
    assert caption.groupby("text")["margin_no_context"].nunique().eq(1).all()  # one no-caption margin per text
    assert len(items[items["probe"] == "minimal_pair"]) == 4 * n_pairs
    assert "This is an owl. It is a kind of bird." in set(items["text"])
    overall = summary[(summary["scope"] == "all") & (summary["phrasing"] == "all")].set_index(["probe", "rule"])
    assert set(overall.index) == {
        ("yesno", "absolute"),
        ("yesno", "paired"),
        ("caption", "absolute"),
        ("caption", "paired"),
        ("caption", "paired_calibrated"),
        ("caption", "paired_prior"),
        ("minimal_pair", "likelihood"),
    }
    assert overall.loc[("yesno", "absolute"), "accuracy"] == pytest.approx(yesno["correct"].mean())
    assert overall.loc[("yesno", "paired"), "n"] == 3 * n_pairs
    assert (summary["ci_low"] <= summary["accuracy"] + 1e-12).all()
    assert (summary["accuracy"] <= summary["ci_high"] + 1e-12).all()
    per_hypernym = summary[summary["scope"] == "hypernym"]
    assert set(per_hypernym["rule"]) == {"absolute"} and per_hypernym["macro_f1"].between(0, 1).all()
    write_textprobe(items, summary, {"lm": "tiny", "init": "random"}, tmp_path / "i.tsv", tmp_path / "s.tsv")
    assert list(read_tsv(tmp_path / "s.tsv").columns) == ["lm", "init", *SUMMARY_COLUMNS]


def test_unknown_phrasing_names_the_field(tiny_lm, data):
    model, tokenizer = tiny_lm
    with pytest.raises(ValueError, match="analysis.textprobe.caption"):
        bad = section({"caption": ["nope"]}, "analysis", "textprobe")
        run_textprobe(model, tokenizer, *data, probe=bad, batch_size=4)
