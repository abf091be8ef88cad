"""Sampling settings for speculative decoding at temperature > 0: the target's distribution, and drawing from it.

`Sampling(temperature, top_p, seed)` turns logits into the distribution plain sampling draws from: softmax of
logits / temperature, then nucleus (top-p) filtering (the smallest set of tokens, most likely first, whose
probability reaches top_p; renormalised). Speculative decoding with a `Sampling` verifies a draft tree by
recursive rejection sampling (`nblib.cast.tree.verify_sampled`), so each emitted token follows exactly this
distribution: the draft changes how many tokens one target call emits, never which.

temperature = 0 means greedy decoding (the argmax); `generate` then takes its greedy path unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import checks


@dataclass(frozen=True)
class Sampling:
    """Temperature, nucleus threshold and seed of sampled decoding (temperature 0: greedy)."""

    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self):
        checks.number("temperature", self.temperature, low=0.0,
                      hint="0 decodes greedily; 0.7 is a common chat setting")
        checks.number("top_p", self.top_p, low=0.0, high=1.0, low_open=True,
                      hint="the nucleus: 1 keeps every token, 0.9 the most likely tokens holding 90 % of the mass")
        checks.whole("seed", self.seed, low=0)

    @property
    def greedy(self) -> bool:
        """True at temperature 0: decoding takes the argmax."""
        return float(self.temperature) == 0.0

    def generator(self, device) -> torch.Generator:
        """A torch generator seeded with `seed` (one per decoding call: reruns draw the same tokens)."""
        g = torch.Generator(device=device)
        g.manual_seed(int(self.seed))
        return g

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """The sampling distribution (..., V) of logits (..., V): temperature, then top-p, in float32."""
        z = logits.float()
        if self.greedy:
            return torch.nn.functional.one_hot(z.argmax(-1), z.shape[-1]).float()
        p = torch.softmax(z / float(self.temperature), -1)
        if self.top_p < 1.0:
            srt, idx = p.sort(-1, descending=True)
            before = srt.cumsum(-1) - srt                  # mass of the tokens ranked above each one
            keep = before < float(self.top_p)              # the first token always stays
            srt = torch.where(keep, srt, torch.zeros_like(srt))
            p = torch.zeros_like(p).scatter(-1, idx, srt)
        return p / p.sum(-1, keepdim=True)

    def draw(self, probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One token per row of probs (B, V) -> (B,) (the argmax when greedy)."""
        if self.greedy:
            return probs.argmax(-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]


def pick(logits: torch.Tensor, sampling: Sampling | None, generator: torch.Generator | None) -> torch.Tensor:
    """The next token per row of logits (B, V) -> (B,): the argmax when sampling is None, else a draw."""
    return logits.argmax(-1) if sampling is None else sampling.draw(sampling.probs(logits), generator)


def check_sampling(sampling) -> Sampling | None:
    """None (greedy) or a Sampling; anything else is one clear error."""
    if sampling is None or isinstance(sampling, Sampling):
        return sampling
    raise checks.BadArgument(f"sampling must be None (greedy) or nblib.cast.Sampling(temperature, top_p, seed), "
                             f"got {sampling!r} ({type(sampling).__name__})")
