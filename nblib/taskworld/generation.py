"""Batched greedy generation for the task models, with per-token log-probs and analytic FLOPs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..cost import TransformerShape, transformer_flops
from . import problems as T
from .models import EOS, NEWLINE, PAD, decode, encode, prompt_of, shape_of

@dataclass
class Generation:
    """One greedy continuation: its text, token ids, and per-token log-prob / max logit of each chosen token."""

    prompt: str
    text: str
    tokens: list[int]
    logprobs: list[float]  # log p of each generated token (greedy: the max log-prob), nats
    max_logits: list[float]  # the raw max logit at each generated position
    prompt_tokens: int  # incl. <bos>
    flops: int  # analytic FLOPs of this sequence alone (prefill + each decode step, KV cache)


def generation_flops(shape: TransformerShape, prompt_tokens: int, new_tokens: int) -> int:
    """Analytic FLOPs of greedy decoding one sequence with a KV cache (prefill, then one token at a time)."""
    total = transformer_flops(shape, 1, prompt_tokens, 0, logits_positions=1)
    for k in range(1, new_tokens):  # the last generated token is never fed back
        total += transformer_flops(shape, 1, 1, past=prompt_tokens + k - 1, logits_positions=1)
    return total


@torch.no_grad()
def generate(model, prompts: Sequence[str], max_new_tokens: int = 64, stop_at_newline: bool = False,
             batch_size: int = 256, bos: bool = True) -> list[Generation]:
    """Greedy-decode each prompt (batched, left-padded, KV cache) until <eos> (or a newline when asked)."""
    from transformers import DynamicCache

    shape = shape_of(model)
    dev = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    results: dict[int, Generation] = {}
    for b0 in range(0, len(order), batch_size):
        idx = order[b0:b0 + batch_size]
        enc = [encode(prompts[i], bos=bos) for i in idx]
        width = max(len(e) for e in enc)
        x = torch.full((len(enc), width), PAD, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for r, e in enumerate(enc):
            x[r, width - len(e):] = torch.tensor(e)
            mask[r, width - len(e):] = 1
        x, mask = x.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=model.config)
        logits = model(input_ids=x, attention_mask=mask, position_ids=pos, cache=cache,
                       use_cache=True, logits_to_keep=1).logits[:, -1].float()  # (B, V)
        n = len(enc)
        toks = [[] for _ in range(n)]
        lps = [[] for _ in range(n)]
        mls = [[] for _ in range(n)]
        done = torch.zeros(n, dtype=torch.bool, device=dev)
        for step in range(max_new_tokens):
            logp = torch.log_softmax(logits, -1)
            best = logp.argmax(-1)  # (B,)
            lp = logp.gather(1, best[:, None])[:, 0]
            ml = logits.max(-1).values
            b_l, lp_l, ml_l, d_l = best.tolist(), lp.tolist(), ml.tolist(), done.tolist()
            for r in range(n):
                if not d_l[r]:
                    toks[r].append(b_l[r])
                    lps[r].append(lp_l[r])
                    mls[r].append(ml_l[r])
            stop = best == EOS
            if stop_at_newline:
                stop |= best == NEWLINE
            done = done | stop
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            nxt = torch.where(done, torch.full_like(best, PAD), best)
            mask = torch.cat([mask, (~done).long()[:, None]], 1)
            pos = pos[:, -1:] + 1
            logits = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, cache=cache,
                           use_cache=True).logits[:, -1].float()
        for r, i in enumerate(idx):
            results[i] = Generation(prompts[i], decode(toks[r]), toks[r], lps[r], mls[r], len(enc[r]),
                                    generation_flops(shape, len(enc[r]), len(toks[r])))
    return [results[i] for i in range(len(prompts))]


def solve(model, problems: Sequence[T.Problem], batch_size: int = 256, max_new_tokens: int = 80) -> list[Generation]:
    """Greedy solutions of the problems (text after the prompt up to <eos>)."""
    return generate(model, [prompt_of(p) for p in problems], max_new_tokens=max_new_tokens, batch_size=batch_size)
