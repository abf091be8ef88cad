"""A feature-level draft (EAGLE-style) for speculative decoding: it predicts the target's next feature, not its token.

The target's feature at position t is its last hidden state (after the final
norm, the vector its LM head reads). EAGLE's observation: the next feature is
far more predictable than the next token, because the feature already carries
everything the target knows about the context, while a token-level draft must
rebuild it from tokens alone. The draft here:

    e_{t+1} = target.embed(x_{t+1})                  (d,)  frozen, the target's own embedding
    z_t     = fc([e_{t+1}; f_t])                     (d,)  one linear layer fuses token and feature
    f^_{t+1} = norm(block(z_t | earlier z))           (d,)  one Llama decoder block with its own KV cache
    logits  = target.lm_head(f^_{t+1})[draft vocab]  (V',) the target's frozen head, restricted rows

At decoding time the first draft step reads the target's real feature (free:
verification computes the feature of every tree node; the accepted nodes' ones
are kept), deeper steps read the draft's own predicted features. Training
(`loss_on`) regresses the target's next feature and fits the target's greedy
token, and unrolls the draft on its own predictions for a few steps so deeper
levels see at training time what they will see at decoding time ("training-time
test", EAGLE-3).

Only fc, the block and the norm are trained and stored (safetensors + JSON, no
pickle); the embedding and LM head are the target's, re-attached at load time.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from .draft import (  # the same <stem>.safetensors + <stem>.json pair and checks as the token draft
    check_state, check_vocab, read_checkpoint, write_checkpoint)
from .tree import body_forward

FORMAT = "nblib.cast.eagle/1"
NEG = -1e9


class FeatureDraft(torch.nn.Module):
    """fc([embed(token); feature]) -> one Llama block -> norm: predicts the target's next feature (..., d)."""

    def __init__(self, config, vocab: torch.Tensor | None = None):
        from transformers import AutoModel

        super().__init__()
        self.config = copy.deepcopy(config)  # target-shaped config: vocab_size and hidden_size are the target's
        self.config.num_hidden_layers = 1
        if getattr(self.config, "layer_types", None) is not None:
            self.config.layer_types = self.config.layer_types[:1]
        body_cfg = copy.deepcopy(self.config)
        body_cfg.vocab_size, body_cfg.pad_token_id = 1, None  # the body never embeds: inputs come through fc
        d = self.config.hidden_size
        self.fc = torch.nn.Linear(2 * d, d, bias=True)
        self.body = AutoModel.from_config(body_cfg, dtype=torch.float32)
        self.body.embed_tokens = None  # not used, not stored
        self.register_buffer("vocab", vocab if vocab is not None else torch.arange(self.config.vocab_size),
                             persistent=False)
        self._target = []  # [embed_tokens, lm_head] of the target: shared, frozen, never registered or saved

    # ------------------------------------------------------------------ the target's shared parts
    def attach(self, target) -> "FeatureDraft":
        """Share the target's frozen embedding and LM head (not stored in this module's parameters)."""
        check_target(self.config, target)
        self._target = [target.get_input_embeddings(), target.get_output_embeddings()]
        return self

    def get_output_embeddings(self):
        """The target's LM head (nblib.cast.tree.head reads its weight)."""
        if not self._target:
            raise RuntimeError("this FeatureDraft is not attached to a target: call draft.attach(target)")
        return self._target[1]

    def head_weight(self) -> torch.Tensor:
        """The LM-head rows of the draft vocabulary, shape (V', d)."""
        return self.get_output_embeddings().weight[self.vocab]

    def fuse(self, tokens: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """fc([embed(tokens); feats]): (B, N) token ids and (B, N, d) features -> (B, N, d) block inputs."""
        if not self._target:
            raise RuntimeError("this FeatureDraft is not attached to a target: call draft.attach(target)")
        with torch.no_grad():
            e = self._target[0](tokens)
        return self.fc(torch.cat([e.to(feats.dtype), feats], -1))

    @property
    def draft_params(self) -> int:
        """Number of trained (stored) parameters."""
        return sum(p.numel() for p in self.parameters())


def check_target(config, target) -> None:
    """Raise one clear ValueError when a draft (config) was built for a target of another width or vocabulary."""
    tc = target.config
    bad = [f"{name} {getattr(config, attr)} vs the target's {getattr(tc, attr)}"
           for name, attr in (("width (hidden_size)", "hidden_size"), ("vocabulary size", "vocab_size"))
           if getattr(config, attr) != getattr(tc, attr)]
    if bad:
        raise ValueError("this draft was trained for another target: " + "; ".join(bad) +
                         ". Use the draft trained for this model, or train one with `python scripts/train_eagle.py`")


def init_from_target(target, vocab: list[int] | torch.Tensor, layer: int = -1) -> FeatureDraft:
    """A feature draft whose block starts as a copy of the target's `layer` and whose norm is the target's."""
    vocab = torch.as_tensor(sorted(set(int(v) for v in vocab)), dtype=torch.long)
    draft = FeatureDraft(target.config, vocab)
    draft.body.layers[0].load_state_dict(target.model.layers[layer].state_dict())
    draft.body.norm.load_state_dict(target.model.norm.state_dict())
    with torch.no_grad():  # start by passing the feature through: z = f (the embedding half starts small)
        d = target.config.hidden_size
        draft.fc.weight.zero_()
        draft.fc.weight[:, d:] = torch.eye(d)
        draft.fc.weight[:, :d].normal_(0, 0.02)
        draft.fc.bias.zero_()
    return draft.attach(target)


# ---------------------------------------------------------------------------------------------- training
def ttt_masks(T: int, steps: int, device=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per unroll step k: the additive mask (1, 1, T, k*T) of its T new entries over all entries so far, and positions.

    Step 1 entries are the real pairs P_t = (f_t, x_{t+1}) (causal). Step k > 1 entry t is (f^, x_{t+k}) at
    position t+k-1 and sees P_0..P_t, its own earlier-step entries t (its ancestors in a draft tree) and itself.
    """
    ar = torch.arange(T, device=device)
    out = []
    for k in range(1, steps + 1):
        allowed = torch.zeros(T, k * T, dtype=torch.bool, device=device)
        allowed[:, :T] = ar[None, :] <= ar[:, None]  # real pairs up to t
        for j in range(1, k):  # earlier unroll steps: only the same t
            allowed[ar, j * T + ar] = True
        mask = torch.zeros(1, 1, T, k * T, device=device).masked_fill_(~allowed[None, None], NEG)
        out.append((mask, (ar + k - 1)[None, :]))
    return out


def loss_on(draft: FeatureDraft, feats: torch.Tensor, tokens: torch.Tensor, labels: torch.Tensor,
            steps: int = 3, w_feat: float = 1.0, w_tok: float = 1.0, decay: float = 0.8,
            valid: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Training loss on a batch of target features (B, T, d), tokens (B, T) and greedy labels (B, T).

    labels[b, t] is the target's greedy next token after position t as a draft-vocabulary index (-100: not in
    it). Unroll step k predicts the feature and token of position t+k from pair t; its loss is weighted decay^(k-1).
    valid (B, T) bool: False for right padding. Returns the loss and per-step top-1 agreement with the target.
    """
    from transformers import DynamicCache

    B, T, d = feats.shape
    n = T - 1  # pairs (f_t, x_{t+1}), t = 0..T-2
    cache = DynamicCache()
    masks = ttt_masks(n, steps, feats.device)
    inp_f = feats[:, :n]
    total, stats = 0.0, {}
    head_w = draft.head_weight()
    for k in range(1, steps + 1):
        m = n - (k - 1)  # entries whose targets (position t+k) exist
        tok_in = tokens[:, k:k + n] if k + n <= T else F.pad(tokens[:, k:], (0, k + n - T))
        if inp_f.shape[1] < n:
            inp_f = F.pad(inp_f, (0, 0, 0, n - inp_f.shape[1]))
        mask, pos = masks[k - 1]
        h = draft.fuse(tok_in, inp_f)
        h = body_forward(draft.body, h, mask.expand(B, -1, -1, -1), pos.expand(B, -1), cache)  # (B, n, d)
        pred, want_f, want_t = h[:, :m], feats[:, k:k + m], labels[:, k:k + m]
        ok = valid[:, k:k + m] if valid is not None else torch.ones_like(want_t, dtype=torch.bool)
        lf = F.smooth_l1_loss(pred[ok], want_f[ok])
        keep = (want_t >= 0) & ok
        logits = pred[keep] @ head_w.T  # (n_keep, V')
        lt = F.cross_entropy(logits, want_t[keep])
        total = total + decay ** (k - 1) * (w_feat * lf + w_tok * lt)
        stats[f"agree{k}"] = (logits.argmax(-1) == want_t[keep]).float().mean().item()
        stats[f"feat{k}"] = lf.item()
        inp_f = h  # the next step reads the draft's own predictions
    return total, stats


# ---------------------------------------------------------------------------------------------- files
def save(draft: FeatureDraft, path: Path | str, meta: dict | None = None) -> Path:
    """Save fc, the block and the norm (fp16) and the draft vocabulary (int64 "vocab") + a JSON config; no pickle."""
    sd = {k: v.detach().half().contiguous().cpu() for k, v in draft.state_dict().items()}
    sd["vocab"] = draft.vocab.detach().to(torch.int64).contiguous().cpu()
    info = {"parameters": draft.draft_params, "dtype": "float16", "draft_vocab": int(draft.vocab.numel()),
            "not_stored": "the embedding and LM head: the target's, re-attached by nblib.cast.eagle.load",
            "meta": meta or {}}
    return write_checkpoint(sd, path, FORMAT, json.loads(draft.config.to_json_string(use_diff=False)), info)


def load(path: Path | str, target) -> FeatureDraft:
    """Load a saved feature draft on the target's device and dtype, attached to the target; one clear error if not."""
    from transformers import AutoConfig

    info, sd, tensors_path, json_path = read_checkpoint(
        path, FORMAT, "feature-draft", "build it with `python scripts/train_eagle.py` (a token-level draft loads "
        "with nblib.cast.draft.load)")
    cfg_dict = dict(info["config"])
    cfg = AutoConfig.for_model(cfg_dict.pop("model_type"), **cfg_dict)
    check_target(cfg, target)
    vocab = sd.pop("vocab").long()
    check_vocab(vocab, cfg.vocab_size, tensors_path)
    p = next(target.parameters())
    draft = FeatureDraft(cfg, vocab)
    check_state(sd, draft.state_dict(), "feature-draft", tensors_path, json_path)
    draft.load_state_dict(sd)
    return draft.to(device=p.device, dtype=p.dtype).eval().attach(target)


def default_path() -> Path:
    """The shipped feature draft for SmolLM2: data/cast/eagle.safetensors (+ data/cast/eagle.json)."""
    return Path(__file__).resolve().parents[2] / "data" / "cast" / "eagle.safetensors"
