"""Text-only probes on a tiny random Llama with an offline byte-level BPE tokenizer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from taxvlm.analysis.textprobe import (
    ITEM_COLUMNS,
    SUMMARY_COLUMNS,
    answer_logprobs,
    probe_pairs,
    run_textprobe,
    sequence_logprobs,
    write_textprobe,
)
from taxvlm.io import read_tsv, write_tsv

CONCEPTS = [
    ("owl1", "owl", "an"),
    ("dog", "dog", "a"),
    ("hammer", "hammer", "a"),
    ("apple", "apple", "an"),
    ("jeans", "jeans", ""),
    ("fly", "fly", "a"),
]
PAIRS = [
    ("owl1", "bird"),
    ("owl1", "animal"),
    ("dog", "animal"),
    ("hammer", "tool"),
    ("apple", "food"),
    ("jeans", "clothing"),
    ("fly", "insect"),
    ("fly", "animal"),
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_lm():
    corpus = [f"Question: Is it true that {a} {n} is a {h}? Answer: Yes No" for _, n, a in CONCEPTS for _, h in PAIRS]
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
    write_tsv(pd.DataFrame(PAIRS, columns=["concept", "hypernym"]), tmp_path / "pairs.tsv")
    return tmp_path / "concepts.tsv", tmp_path / "pairs.tsv"


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


def test_foils_are_balanced_seeded_and_never_true():
    pairs = pd.DataFrame(PAIRS, columns=["concept", "hypernym"])
    triples = probe_pairs(pairs, seed=3)
    assert len(triples) == len(PAIRS)
    assert not set(zip(triples["leaf"], triples["foil"])) & set(PAIRS)
    pd.testing.assert_frame_equal(triples, probe_pairs(pairs.iloc[::-1], seed=3))
    assert len(probe_pairs(pairs, seed=3, max_pairs=3)) == 3


@pytest.mark.parametrize("chat_template", [False, True])
def test_run_textprobe_outputs(tiny_lm, data, tmp_path, chat_template):
    model, tokenizer = tiny_lm
    tokenizer.chat_template = CHAT_TEMPLATE
    items, summary = run_textprobe(
        model, tokenizer, *data, probe_cfg={}, seed=0, chat_template=chat_template, batch_size=4
    )
    assert list(items.columns) == list(ITEM_COLUMNS) and list(summary.columns) == list(SUMMARY_COLUMNS)
    yesno = items[items["probe"] == "yesno"]
    assert len(yesno) == 3 * 2 * len(PAIRS) and (yesno["answer"] == "Yes").sum() == (yesno["answer"] == "No").sum()
    assert "Is it true that an owl is a bird?" in set(yesno["text"])
    assert "Are jeans clothings?" in set(yesno["text"]) and not items["text"].str.contains("jeanses").any()
    assert len(items[items["probe"] == "minimal_pair"]) == 3 * len(PAIRS)
    overall = summary[(summary["scope"] == "all") & (summary["phrasing"] == "all")].set_index("probe")
    assert overall.loc["yesno", "accuracy"] == pytest.approx(yesno["correct"].mean())
    assert (summary["ci_low"] <= summary["accuracy"] + 1e-12).all()
    assert (summary["accuracy"] <= summary["ci_high"] + 1e-12).all()
    per_hypernym = summary[summary["scope"] == "hypernym"]
    assert set(per_hypernym["probe"]) == {"yesno"} and per_hypernym["macro_f1"].between(0, 1).all()
    write_textprobe(items, summary, {"lm": "tiny", "init": "random"}, tmp_path / "i.tsv", tmp_path / "s.tsv")
    assert list(read_tsv(tmp_path / "s.tsv").columns) == ["lm", "init", *SUMMARY_COLUMNS]


def test_foils_follow_the_true_hypernym_mix() -> None:
    """A uniform foil draw would let a frequency-only model beat chance on minimal pairs."""
    from taxvlm.analysis.textprobe import probe_pairs

    rows = [(f"a{i}", "animal") for i in range(20)] + [(f"r{i}", f"rare{i}") for i in range(20)]
    table = probe_pairs(pd.DataFrame(rows, columns=["concept", "hypernym"]), seed=0)
    rare_foils = table[table["leaf"].str.startswith("r")]["foil"]
    # weighted: P(animal) = 20/39 per rare leaf; uniform would give 1/20
    assert (rare_foils == "animal").sum() >= 5
    assert not (table["foil"] == table["hypernym"]).any()
