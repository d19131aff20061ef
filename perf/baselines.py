"""The plain ways of doing what taxvlm's fast paths do, as a reader of HF-LLaVA-style code would
write them: a per-question `generate` scorer and a full-sequence `labels=` training step."""

from __future__ import annotations

import torch
from torch import nn

from harness import autocast
from workload import Setup

@torch.inference_mode()
def score_generate(s: Setup, projector: nn.Module) -> torch.Tensor:
    """The plain per-question scorer: `[head][image][question]` embeddings → `generate` one token
    with its scores → log-softmax → log P(Yes), log P(No)."""
    embed = s.model.get_input_embeddings()
    yes, no = s.prompt.choice_ids
    out = torch.empty(len(s.eval_rows), 2)
    for i, (image, text) in enumerate(s.eval_rows):
        ids = torch.tensor([s.prompt.head + s.prompt.question_ids(text)], device=s.dev)
        image_embeds = projector(s.feats[image : image + 1].to(s.dev).float())
        tokens = embed(ids)
        n = len(s.prompt.head)
        embeds = torch.cat([tokens[:, :n], image_embeds.to(tokens.dtype), tokens[:, n:]], dim=1)
        result = s.model.generate(
            inputs_embeds=embeds,
            attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=s.dev),
            max_new_tokens=1,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=s.prompt.tokenizer.pad_token_id or s.prompt.tokenizer.eos_token_id,
        )
        out[i] = torch.log_softmax(result.scores[0][0].float(), dim=-1)[[yes, no]].cpu()
    return out



def llava_loss(s: Setup, projector: nn.Module, batch: list[int]) -> torch.Tensor:
    """HF-LLaVA-style loss: the (frozen) encoder on the pixels, the projector, the full sequence
    `[head][image][question][answer]` per row, right-padded with an attention mask, `model(..., labels=...)`
    (full-vocabulary logits at every position, CE with everything but the answer set to -100)."""
    rows = [s.train_rows[i] for i in batch]
    embed = s.model.get_input_embeddings()
    tokens, pooled = s.encoder.encode(s.pixels[[r[0] for r in rows]].to(s.dev))
    image_embeds = projector(pooled if s.projector["features"] == "pooled" else tokens)
    seqs, labels = [], []
    for (_, text, answer), img in zip(rows, image_embeds):
        q, a = s.prompt.question_ids(text), s.prompt.answers[answer]
        head = embed(torch.tensor(s.prompt.head, dtype=torch.long, device=s.dev))
        seqs.append(torch.cat([head, img.to(head.dtype), embed(torch.tensor(q + a, device=s.dev))]))
        labels.append([-100] * (len(s.prompt.head) + len(img) + len(q)) + a)
    length = max(len(x) for x in seqs)
    inputs = torch.zeros(len(seqs), length, seqs[0].shape[-1], dtype=seqs[0].dtype, device=s.dev)
    mask = torch.zeros(len(seqs), length, dtype=torch.long, device=s.dev)
    target = torch.full((len(seqs), length), -100, dtype=torch.long, device=s.dev)
    for i, (x, y) in enumerate(zip(seqs, labels)):
        inputs[i, : len(x)], mask[i, : len(x)], target[i, : len(y)] = x, 1, torch.tensor(y)
    return s.model(inputs_embeds=inputs, attention_mask=mask, labels=target).loss


def llava_step(s: Setup, projector: nn.Module, opt: torch.optim.Optimizer, batch: list[int]) -> torch.Tensor:
    with autocast(s.dev):
        loss = llava_loss(s, projector, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(projector.parameters(), 1.0)
    opt.step()
    return loss.detach()

