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


def _left_padded(encoded: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids (B, T) and their attention mask, for a batch of encoded prompts."""
    width = max(len(e) for e in encoded)
    x = torch.full((len(encoded), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for r, e in enumerate(encoded):
        x[r, width - len(e):] = torch.tensor(e)
        mask[r, width - len(e):] = 1
    return x, mask


@torch.no_grad()
def generate(model, prompts: Sequence[str], max_new_tokens: int = 64, stop_at_newline: bool = False,
             batch_size: int = 256, bos: bool = True) -> list[Generation]:
    """Greedy-decode each prompt (batched, left-padded, KV cache) until <eos> (or a newline when asked).

    This is transformers' `model.generate` (greedy, raw logits returned); each
    sequence is cut after its first stop token, and the log-prob of each chosen
    token is log_softmax of those logits. tests/taskworld/test_taskworld_generation.py
    checks it against the earlier hand-written decoding loop on the committed models.
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a whole number >= 1, got {max_new_tokens!r}")
    shape = shape_of(model)
    dev = next(model.parameters()).device
    stops = [EOS, NEWLINE] if stop_at_newline else [EOS]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    results: dict[int, Generation] = {}
    for b0 in range(0, len(order), batch_size):
        idx = order[b0:b0 + batch_size]
        enc = [encode(prompts[i], bos=bos) for i in idx]
        x, mask = _left_padded(enc)
        out = model.generate(input_ids=x.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new_tokens,
                             min_new_tokens=0, do_sample=False, num_beams=1, eos_token_id=stops,
                             pad_token_id=PAD, output_logits=True, return_dict_in_generate=True)
        new = out.sequences[:, x.shape[1]:]  # (B, n): after a sequence's stop token, PAD
        logits = torch.stack(out.logits, 1).float()  # (B, n, V) raw logits at each generated position
        lps = torch.log_softmax(logits, -1).gather(-1, new[..., None])[..., 0].tolist()
        mls = logits.max(-1).values.tolist()
        for r, (i, toks) in enumerate(zip(idx, new.tolist(), strict=True)):
            n = next((k + 1 for k, t in enumerate(toks) if t in stops), len(toks))
            results[i] = Generation(prompts[i], decode(toks[:n]), toks[:n], lps[r][:n], mls[r][:n], len(enc[r]),
                                    generation_flops(shape, len(enc[r]), n))
    return [results[i] for i in range(len(prompts))]


def solve(model, problems: Sequence[T.Problem], batch_size: int = 256, max_new_tokens: int | None = None) -> list[Generation]:
    """Greedy solutions of the problems (text after the prompt up to <eos>).

    max_new_tokens defaults to 80, or to the longest gold solution + 16 when that is more (long v2 problems).
    """
    if max_new_tokens is None:
        max_new_tokens = max([80] + [len(p.solution) + 16 for p in problems])
    return generate(model, [prompt_of(p) for p in problems], max_new_tokens=max_new_tokens, batch_size=batch_size)
