"""Frozen causal LMs (pretrained or a random-init twin) and the image + question prompt.

Prompt format (**decision**): `[head] [image tokens] [question text] [answer]`, where

- plain (`chat_template: false`): the text is `Question: {question} Answer:`; answers = ` Yes` / ` No`
  followed by EOS. The image goes after the first token, as in the paper's model (which splices it after
  BOS): head = BOS if the tokenizer adds one by default; otherwise (e.g. SmolLM2) head = the first token
  of the text itself (`Question`), which then moves out of the question text (without this the image
  would sit at position 0). `head + question_ids(q)` is exactly the tokenization of the text without
  the image, with or without BOS;
- chat (`chat_template: true`): the tokenizer's chat template with a user turn = image + question and
  the generation prompt; head = the template text before the image; answers = `Yes` / `No` plus the
  template's end-of-turn token (or EOS when the template cannot be split that way).

The pieces are tokenized separately, so training, batched scoring and the reference scorer all see
identical token ids. Forced choice compares the *first* answer token of Yes vs No (they must differ);
training uses every answer token plus the end token.

Only the decoder's hidden states are computed for the whole sequence; `lm_logits` is applied to the
few positions that are scored, never the full vocabulary at every position.

Training and scoring share one forward (`shared_prefix_forward`): every row starts with
`[head] [image tokens] [the question tokens all rows start with]`, which runs once per distinct image;
its KV cache is gathered to the rows and only each row's remaining tokens run per row.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from taxvlm.models.compiled import CompiledLM
from taxvlm.models.guard import check_loading_info
from taxvlm.models.origin import loaded_from
from taxvlm.prompts import CAPTION_PROMPT
from taxvlm.seeding import derive_seed
from taxvlm.specs import FrozenLM

_IMAGE_MARK, _QUESTION_MARK = "\x00IMAGE\x00", "\x00QUESTION\x00"
ANSWERS = ("Yes", "No")


def load_lm(lm: FrozenLM, device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """A frozen causal LM in eval mode, and its tokenizer. bf16 weights on GPU, fp32 on CPU.

    `init="random"` keeps the pretrained config but draws fresh weights from the LM's
    `random_init_seed` (the twin control): fixed per LM, so a run's seed only changes its data order
    and projector init, and all seeds share one random LM.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    spec = lm.spec
    if spec.source != "hf":
        raise ValueError(f"LM spec field 'source' is {spec.source!r}; only 'hf' is supported")
    source = str(lm.weights_dir) if lm.weights_dir is not None else spec.id
    revision = spec.revision if lm.weights_dir is None else None
    token = os.environ.get("HF_TOKEN")
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(source, token=token, revision=revision)
    if lm.init == "pretrained":
        model, info = AutoModelForCausalLM.from_pretrained(
            source, token=token, revision=revision, dtype=dtype, output_loading_info=True
        )
        check_loading_info(f"hf LM {source!r}", info)
    elif lm.init == "random":
        config = AutoConfig.from_pretrained(source, token=token, revision=revision)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(spec.random_init_seed, "lm-random-init"))
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    else:
        raise ValueError(f"LM init is {lm.init!r}; expected 'pretrained' or 'random'")
    return model.requires_grad_(False).eval().to(device), tokenizer


def loaded_lm(model: nn.Module, lm: FrozenLM) -> dict[str, Any]:
    """What was loaded (train_config.json): the local folder, or the hub id, requested revision and the
    commit transformers resolved, so an unpinned hub model is still traceable."""
    if lm.weights_dir is not None:
        return loaded_from(lm.weights_dir)
    commit = getattr(model.config, "_commit_hash", None)
    return {"id": lm.spec.id, "revision": lm.spec.revision, "commit": commit}


@dataclass(frozen=True)
class PromptFormat:
    head: list[int]  # token ids before the image
    question_template: str  # text after the image, with `_QUESTION_MARK` where the question goes
    answers: dict[str, list[int]]  # "Yes"/"No" → answer token ids + end token
    tokenizer: Any
    text_head: int = 0  # leading tokens of the question text that live in `head` (before the image)

    def question_ids(self, question: str) -> list[int]:
        """Token ids of the question text after the image (without its first `text_head` tokens)."""
        text = self.question_template.replace(_QUESTION_MARK, question)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if ids[: self.text_head] != self.head[len(self.head) - self.text_head :]:
            raise ValueError(f"question text {text!r} does not start with the head token(s) {self.head}")
        return ids[self.text_head :]

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of the format (for train_config.json)."""
        question = self.question_template.replace(_QUESTION_MARK, "{question}")
        return {"head": self.head, "question": question, "head_from_question": self.text_head, "answers": self.answers}

    @property
    def choice_ids(self) -> tuple[int, int]:
        """The first answer token of Yes and of No: what forced choice compares."""
        return self.answers["Yes"][0], self.answers["No"][0]


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _chat_format(tokenizer: Any) -> PromptFormat:
    kwargs = {"tokenize": False, "enable_thinking": False}
    user = [{"role": "user", "content": _IMAGE_MARK + _QUESTION_MARK}]
    prompt = tokenizer.apply_chat_template(user, add_generation_prompt=True, **kwargs)
    head, question_template = prompt.split(_IMAGE_MARK)
    specials = set(tokenizer.all_special_ids)
    answers = {}
    for answer in ANSWERS:
        full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": answer}], **kwargs)
        tail = full[len(prompt) :] if full.startswith(prompt) else answer + tokenizer.eos_token
        ids = _ids(tokenizer, tail)
        end = next((i for i, t in enumerate(ids) if t in specials), len(ids) - 1)
        answers[answer] = ids[: end + 1]  # answer + end-of-turn; drop the template's trailing newline
    return PromptFormat(_ids(tokenizer, head), question_template, answers, tokenizer)


def _plain_format(tokenizer: Any) -> PromptFormat:
    """The plain format; without a BOS the text's first token is the head (module docstring)."""
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and tokenizer("x")["input_ids"][:1] == [bos]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    answers = {a: _ids(tokenizer, " " + a) + eos for a in ANSWERS}
    template = f"Question: {_QUESTION_MARK} Answer:"
    if adds_bos:
        return PromptFormat([bos], template, answers, tokenizer)
    first = _ids(tokenizer, template.split(_QUESTION_MARK)[0])[:1]
    return PromptFormat(first, template, answers, tokenizer, text_head=1)


def build_prompt(tokenizer: Any, chat_template: bool = False) -> PromptFormat:
    """The prompt format of the module docstring; fails if Yes and No share their first token."""
    prompt = _chat_format(tokenizer) if chat_template else _plain_format(tokenizer)
    yes, no = prompt.choice_ids
    if yes == no:
        raise ValueError(f"'Yes' and 'No' start with the same token ({yes}); forced choice is impossible")
    return prompt


def _cache_kwarg(base: nn.Module) -> str:
    """transformers 5 names the KV-cache argument `cache`; older versions `past_key_values`."""
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def decoder_forward(
    model: nn.Module, embeds: torch.Tensor, cache: Any = None, use_cache: bool = False
) -> tuple[torch.Tensor, Any]:
    """Final hidden states `[B, L, d]` of the decoder (no LM head), and the KV cache when asked.

    No attention mask: sequences are right-padded, so causal attention alone keeps every real
    position independent of the padding after it. A compiled LM (`taxvlm.models.compiled`) runs the
    cache-free forward compiled; a forward with a cache stays eager.
    """
    if isinstance(model, CompiledLM) and cache is None and not use_cache:
        return model.hidden(embeds), None
    base = model.base_model
    kwarg = _cache_kwarg(base)
    out = base(inputs_embeds=embeds, use_cache=use_cache or cache is not None, **{kwarg: cache})
    return out.last_hidden_state, getattr(out, kwarg, None)


def common_prefix_len(seqs: list[list[int]]) -> int:
    """Length of the common token prefix of `seqs`, leaving at least one token of each after it (the
    position that predicts the answer must run per row)."""
    n = min(len(s) for s in seqs) - 1
    first = seqs[0]
    for s in seqs[1:]:
        while n and s[:n] != first[:n]:
            n -= 1
    return max(n, 0)


def shared_prefix_forward(
    model: nn.Module,
    head: list[int],
    image_embeds: torch.Tensor,
    common: list[int],
    group: torch.Tensor,
    suffixes: list[list[int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Final hidden states `[B, S, d]` of each row's suffix (right-padded) and the suffix lengths, for
    rows `[head] [image_embeds[group[i]]] [common] [suffixes[i]]`.

    The prefix runs once per image (`image_embeds` is `[G, k, d]`); its per-layer KV cache is indexed
    by `group` to one entry per row, so every row attends to exactly the keys and values a full forward
    of its own sequence would, and gradients flow back through the indexing to the image embeddings
    (summed over the rows that share an image). Cost: G prefixes + B suffixes instead of B full rows.
    When no image repeats (G = B, as in i.i.d. batches from a large dataset) sharing saves nothing,
    and the rows run as one pass: a second decoder pass would only add its kernel launches, which
    bound the step on a GPU. A compiled LM (`taxvlm.models.compiled`) always runs one pass: its captured
    graph holds no KV cache.
    """
    n_images, dev = len(image_embeds), image_embeds.device
    if n_images == len(group) or isinstance(model, CompiledLM):
        text, lengths = pad_right([common + s for s in suffixes])
        hidden, _ = decoder_forward(model, splice(model, head, image_embeds[group.to(dev)], text))
        return hidden[:, len(head) + image_embeds.shape[1] + len(common) :], lengths - len(common)
    common_ids = torch.tensor(common, dtype=torch.long).expand(n_images, len(common))
    _, cache = decoder_forward(model, splice(model, head, image_embeds, common_ids), use_cache=True)
    cache.batch_select_indices(group.to(dev))
    rest, lengths = pad_right(suffixes)
    hidden, _ = decoder_forward(model, model.get_input_embeddings()(rest.to(dev)), cache=cache)
    return hidden, lengths


def lm_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The LM head on selected hidden states (with Gemma-style final soft-capping when configured)."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def pad_right(seqs: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `[B, L]` ids and the lengths."""
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.full((len(seqs), int(lengths.max())), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, lengths


def splice(model: nn.Module, head: list[int], image_embeds: torch.Tensor, text_ids: torch.Tensor) -> torch.Tensor:
    """`[head] [image tokens] [text]` as input embeddings `[B, len(head) + k + L, d]`."""
    embed = model.get_input_embeddings()
    device = image_embeds.device
    text = embed(text_ids.to(device))
    parts = [embed(torch.tensor(head, device=device)).expand(len(text_ids), -1, -1)] if head else []
    return torch.cat(parts + [image_embeds.to(text.dtype), text], dim=1)


def caption_prompt(tokenizer: Any, text: str = CAPTION_PROMPT) -> tuple[list[int], list[int]]:
    """(head ids before the image, prompt ids after it) for `[head] [image] text` (module docstring):
    `head + prompt` is the tokenization of `text` alone, with BOS when the tokenizer adds one."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and tokenizer("x")["input_ids"][:1] == [bos]:
        return [bos], ids
    return ids[:1], ids[1:]
