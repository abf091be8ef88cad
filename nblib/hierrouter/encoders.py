"""What the router sees of the context text: an embedding, computed once per context and cached.

- `HiddenStateEncoder` (the default, `hidden:v2-tiny`): a task model's own hidden states from one forward
  pass over the context: the state at the operator of the step due next (in the problem line) and the state
  at the context's last token. The router learns its own projection of them (PCA, `agent.Projection`);
- `MiniLMEncoder`: the embedded all-MiniLM-L6-v2 sentence embedding of the context;
- `KindFeatures`: the hand-feature ablation, a one-hot of the next step's kind parsed from the text. It is a
  label handed to the router, not something it learns to read: use it only as the named ablation.

Each encoder has `name`, `dim`, `flops_per_token` (0 for the hand features) and `encode(contexts)`, an
(n, dim) float32 array. The environment charges `flops_per_token` x the tokens the router reads per hop.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def next_op_position(context: str) -> int | None:
    """Index (in the context's characters) of the operator of the step due next, or None when none is left."""
    first, _, rest = context.partition("\n")
    written = len([ln for ln in rest.split("\n") if ln.strip()])
    ops = [i for i, ch in enumerate(first) if ch in "+-*" and i > 0 and first[i - 1] == ","]
    return ops[written] if written < len(ops) else None


class HiddenStateEncoder:
    """A task model's own hidden states as the router's view: at the next step's operator and at the context's end.

    One forward pass over the context (causal: the problem line's states do not depend on what follows) gives
    the hidden state (layer `layer`) at the operator of the step due next (zeros when no step is left) and at
    the last token. Which model is right on a step depends on that step's kind and operands, which the first
    state reads; the second carries what has been written.
    """

    def __init__(self, model: str = "v2-tiny", layer: int = -1, batch_size: int = 512):
        from .. import cost
        from ..taskworld import models

        self.model_name, self.layer, self.batch_size = model, layer, batch_size
        self.model = models.load_model(model)
        self.d = int(self.model.config.hidden_size)
        self.dim = 2 * self.d
        self.flops_per_token = 2.0 * cost.TransformerShape.from_config(self.model.config).params(tied_embeddings=True)
        self.name = f"hidden:{model}:{layer}:next"

    @torch.no_grad()
    def encode(self, contexts: Sequence[str]) -> np.ndarray:
        """(n, 2 x d_model): the states at the next step's operator and at the last token."""
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
                pos = next_op_position(c)
                if pos is not None:
                    out[b0 + r, :self.d] = hs[r, pos + 1]  # +1: <bos> comes first
                out[b0 + r, self.d:] = hs[r, len(e) - 1]
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


def make_encoder(spec: str = "hidden:v2-tiny"):
    """An encoder from a short spec: 'hidden:<task model>[:layer]', 'minilm' or 'hand:kind' (the ablation)."""
    if spec == "hand:kind":
        return KindFeatures()
    if spec == "minilm" or spec.startswith("minilm:"):
        return MiniLMEncoder(spec.split(":", 1)[1] if ":" in spec else "minilm")
    if spec.startswith("hidden:"):
        parts = spec.split(":")
        return HiddenStateEncoder(parts[1], int(parts[2]) if len(parts) > 2 and parts[2] else -1)
    raise ValueError(f"unknown encoder {spec!r}; use 'hidden:v2-tiny', 'hidden:<task model>:<layer>', 'minilm' "
                     "or 'hand:kind' (the hand-feature ablation)")
