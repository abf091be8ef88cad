"""What the router sees of the context text: an embedding, computed once per context and cached.

- `HiddenStateEncoder` (the default): a task model's own hidden states, one forward pass over the context:
  the states at the query's operations and at the context's last token (the cheapest encoder, and it has
  read the problem the way the pool does);
- `MiniLMEncoder`: the embedded all-MiniLM-L6-v2 sentence embedding of the context;
- `KindFeatures`: the hand-feature ablation, a one-hot of the next step's kind parsed from the text. It is a
  label handed to the router, not something it learns to read: use it only as the named ablation.

Each encoder has `name`, `dim`, `flops_per_token` (0 for the hand features) and `encode(contexts)`, an
(n, dim) float32 array.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


class HiddenStateEncoder:
    """A task model's own hidden states as the router's view: the query's operations, then the context's end.

    One forward pass over the context (causal, so the problem line's states do not depend on what follows)
    gives the hidden state (layer `layer`) at each operation's operator character of the problem line (the
    query; `slots` of them, zero-padded) and at the context's last token (what has been written so far).
    The router still has to learn which slot matters at which hop and which model is good at what.
    """

    def __init__(self, model: str = "tiny", layer: int = -1, slots: int = 6, batch_size: int = 512):
        from .. import cost
        from ..taskworld import models

        if slots < 0:
            raise ValueError(f"slots must be >= 0, got {slots}")
        self.model_name, self.layer, self.slots, self.batch_size = model, layer, slots, batch_size
        self.model = models.load_model(model)
        self.d = int(self.model.config.hidden_size)
        self.dim = self.d * (slots + 1)
        self.flops_per_token = 2.0 * cost.TransformerShape.from_config(self.model.config).params()
        self.name = f"hidden:{model}:{layer}:{slots}"

    @torch.no_grad()
    def encode(self, contexts: Sequence[str]) -> np.ndarray:
        """(n, d_model x (slots + 1)): states at the query's operators, then at the last token."""
        from ..taskworld import models

        out = np.zeros((len(contexts), self.dim), dtype=np.float32)
        for b0 in range(0, len(contexts), self.batch_size):
            chunk = contexts[b0:b0 + self.batch_size]
            enc = [models.encode(c) for c in chunk]
            width = max(map(len, enc))
            x = torch.full((len(enc), width), models.PAD, dtype=torch.long)
            mask = torch.zeros_like(x)
            for r, e in enumerate(enc):
                x[r, :len(e)] = torch.tensor(e)
                mask[r, :len(e)] = 1
            hs = self.model(input_ids=x, attention_mask=mask, output_hidden_states=True).hidden_states[self.layer]
            hs = hs.float().numpy()
            for r, (c, e) in enumerate(zip(chunk, enc, strict=True)):
                first = c.split("\n", 1)[0]
                ops = [i + 1 for i, ch in enumerate(first) if ch in "+-*"][:self.slots]  # +1: <bos> comes first
                for k, pos in enumerate(ops):
                    out[b0 + r, k * self.d:(k + 1) * self.d] = hs[r, pos]
                out[b0 + r, self.slots * self.d:] = hs[r, len(e) - 1]
        return out


class MiniLMEncoder:
    """The embedded all-MiniLM-L6-v2 sentence embedding (384-d, normalised) of the context text."""

    def __init__(self, name_or_path: str = "minilm"):
        from .. import zoo

        self.model, self.tokenizer = zoo.load_encoder(name_or_path)
        self.dim = int(self.model.config.hidden_size)
        self.flops_per_token = 2.0 * zoo.n_params(self.model)
        self.name = f"minilm:{name_or_path}"

    def encode(self, contexts: Sequence[str]) -> np.ndarray:
        """(n, 384) sentence embeddings; newlines become ' | ' so the encoder sees the lines apart."""
        from .. import zoo

        texts = [c.strip().replace("\n", " | ") for c in contexts]
        return zoo.embed(texts, self.model, self.tokenizer).float().numpy().astype(np.float32)


class KindFeatures:
    """Ablation: a one-hot of the next step's kind (+, -, *, none), parsed from the context's problem line."""

    name = "hand:kind"
    dim = 4
    flops_per_token = 0.0

    def encode(self, contexts: Sequence[str]) -> np.ndarray:
        """(n, 4) one-hot of the kind of the step each context asks for next (last column: no step left)."""
        from ..taskworld import problems as T

        out = np.zeros((len(contexts), self.dim), dtype=np.float32)
        for i, c in enumerate(contexts):
            first, *written = [ln for ln in c.split("\n") if ln.strip()]
            kinds = T.parse_problem(first).kinds
            k = len(written)
            out[i, T.OPS.index(kinds[k]) if k < len(kinds) else 3] = 1.0
        return out


def make_encoder(spec: str = "hidden:tiny"):
    """An encoder from a short spec: 'hidden:<task model>[:layer[:slots]]', 'minilm' or 'hand:kind' (the ablation)."""
    if spec == "hand:kind":
        return KindFeatures()
    if spec == "minilm" or spec.startswith("minilm:"):
        return MiniLMEncoder(spec.split(":", 1)[1] if ":" in spec else "minilm")
    if spec.startswith("hidden:"):
        parts = spec.split(":")
        return HiddenStateEncoder(parts[1], int(parts[2]) if len(parts) > 2 else -1,
                                  int(parts[3]) if len(parts) > 3 else 6)
    raise ValueError(f"unknown encoder {spec!r}; use 'hidden:tiny', 'hidden:<task model>:<layer>', 'minilm' "
                     "or 'hand:kind' (the hand-feature ablation)")
