"""Speculative decoding with dynamic draft trees (EAGLE-2 style) and CAST's cost-aware tree shapes.

One decoding step, for every prompt in the batch at once:

1. the draft expands a tree level by level from the last committed token (the
   root): each level keeps the `width` best nodes by cumulative draft
   log-probability and proposes `top_k` children for each;
2. the drafted nodes are reranked and the best `n_verify` kept (an
   ancestor-closed subtree);
3. the target scores root + subtree in ONE forward pass, with a 4D additive
   float mask (each node sees the committed prefix, its ancestors and itself)
   and per-node position ids (prefix length + depth);
4. the longest path whose tokens equal the target's own greedy choices is
   accepted, plus the target's next ("bonus") token; only the accepted entries
   stay in the KV cache.

The target decides every emitted token, so greedy output is identical to the
target's own greedy decoding (lossless). Policies choose the tree shape:
`FixedTree` (EAGLE-2: fixed top-k, depth and budget; `chain(d)` is a chain
draft) and `CastPolicy` (widths, depth and verify count chosen from measured
latency tables, see `nblib.cast.policy`).
"""
from __future__ import annotations

import numbers
import time
import weakref
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from . import kernel
from .sampling import Sampling, check_sampling, pick as pick_token

NEG = -1e9  # additive mask value for "may not attend" (finite: no NaN for rows of padding)
MAX_TREE_DEPTH = 32  # hard cap on draft tree levels, whatever a policy's go_deeper says


# ----------------------------------------------------------------------------- KV cache with a validity mask
class KV:
    """A DynamicCache whose slots carry a per-row validity mask, so rows may hold ragged sequences."""

    def __init__(self, batch: int, device: torch.device):
        from transformers import DynamicCache

        self.cache = DynamicCache()
        self.valid = torch.zeros(batch, 0, dtype=torch.bool, device=device)  # (B, L) slot holds a live entry
        self.n_pos = torch.zeros(batch, dtype=torch.long, device=device)     # (B,) next position id per row

    @property
    def length(self) -> int:
        """Number of slots (live or dead) in the cache."""
        return self.valid.shape[1]

    def _layers(self):
        return self.cache.layers

    def keep(self, start: int, idx: torch.Tensor, ok: torch.Tensor) -> None:
        """Keep slots [0, start) plus, per row, the slots start + idx[b] where ok[b] (B, A); drop the rest."""
        for layer in self._layers():
            for name in ("keys", "values"):
                t = getattr(layer, name)  # (B, H, L, D)
                tail = t[:, :, start:]
                g = idx[:, None, :, None].expand(-1, t.shape[1], -1, t.shape[3])
                setattr(layer, name, torch.cat([t[:, :, :start], tail.gather(2, g)], dim=2))
        self.valid = torch.cat([self.valid[:, :start], ok], dim=1)
        self.n_pos = self.n_pos + ok.sum(1)

    def truncate(self, length: int) -> None:
        """Drop every slot from `length` on (positions are unchanged: those slots were never committed)."""
        for layer in self._layers():
            layer.keys = layer.keys[:, :, :length]
            layer.values = layer.values[:, :, :length]
        self.valid = self.valid[:, :length]

    def select(self, rows: torch.Tensor) -> None:
        """Keep only the given batch rows."""
        for layer in self._layers():
            layer.keys = layer.keys[rows]
            layer.values = layer.values[rows]
        self.valid = self.valid[rows]
        self.n_pos = self.n_pos[rows]

    def compact(self) -> None:
        """Squeeze out dead slots (live entries right-aligned per row) when they waste over a third of the cache."""
        live = self.valid.sum(1)
        width = int(live.max()) if live.numel() else 0
        if self.length - width <= max(8, self.length // 3):
            return
        # stable order: dead slots first, then live slots in their original order -> take the last `width`
        order = torch.sort(self.valid.to(torch.int8), dim=1, stable=True).indices[:, -width:]  # (B, width)
        for layer in self._layers():
            for name in ("keys", "values"):
                t = getattr(layer, name)
                g = order[:, None, :, None].expand(-1, t.shape[1], -1, t.shape[3])
                setattr(layer, name, t.gather(2, g))
        self.valid = self.valid.gather(1, order)


def body_forward(body, h: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache) -> torch.Tensor:
    """A Llama body's decoder layers and final norm on inputs (B, N, d) with a 4D additive mask: the lean path.

    Calls the layers directly (no mask building, no output capture, no per-call checks), so one forward costs
    the model's compute and little else.
    """
    pe = body.rotary_emb(h, position_ids=pos)
    for layer in body.layers:
        if _is_llama_layer(layer):
            h = _llama_layer(layer, h, mask, pe, cache)
        else:  # another architecture: its own layer code, still without the model's wrapper
            h = layer(h, attention_mask=mask, position_embeddings=pe, position_ids=pos, cache=cache, use_cache=True)
    return body.norm(h)


_LLAMA_OK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer -> does the lean layer below fit it


def _is_llama_layer(layer) -> bool:
    """A Llama-family decoder layer (q/k/v/o projections, SiLU gated MLP, RMSNorms, rotary) in eval mode."""
    hit = _LLAMA_OK.get(layer)
    if hit is not None:
        return hit and not layer.training
    a, m = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
    ok = (type(layer).__name__ in ("LlamaDecoderLayer", "MistralDecoderLayer", "Qwen2DecoderLayer")
          and all(hasattr(a, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling", "layer_idx"))
          and all(hasattr(m, n) for n in ("gate_proj", "up_proj", "down_proj", "act_fn"))
          and getattr(getattr(a, "config", None), "sliding_window", None) is None
          and hasattr(layer, "input_layernorm") and hasattr(layer, "post_attention_layernorm"))
    _LLAMA_OK[layer] = ok  # weak: a model dropped by the user is not kept alive here
    return ok and not layer.training


def _llama_layer(layer, h: torch.Tensor, mask: torch.Tensor, pe, cache) -> torch.Tensor:
    """One Llama decoder layer on h (B, N, d): the same operations as transformers' layer, called directly."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    a, m = layer.self_attn, layer.mlp
    B, N, _ = h.shape
    x = layer.input_layernorm(h)
    q = a.q_proj(x).view(B, N, -1, a.head_dim).transpose(1, 2)  # (B, H, N, hd)
    k = a.k_proj(x).view(B, N, -1, a.head_dim).transpose(1, 2)  # (B, Hkv, N, hd)
    v = a.v_proj(x).view(B, N, -1, a.head_dim).transpose(1, 2)
    q, k = apply_rotary_pos_emb(q, k, *pe)
    k, v = cache.update(k, v, a.layer_idx)  # (B, Hkv, L, hd) with the new entries appended
    o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=a.scaling,
                                                         enable_gqa=q.shape[1] != k.shape[1])
    h = h + a.o_proj(o.transpose(1, 2).reshape(B, N, -1))
    x = layer.post_attention_layernorm(h)
    return h + m.down_proj(m.act_fn(m.gate_proj(x)) * m.up_proj(x))


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The 4D additive float mask (B, 1, N, L) of a visibility matrix allowed (B, N, L): 0 to see, NEG not to."""
    mask = torch.zeros(allowed.shape[0], 1, *allowed.shape[1:], dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed[:, None], NEG)


def is_feature_draft(lm) -> bool:
    """Whether `lm` is a feature-level draft (nblib.cast.eagle.FeatureDraft): it reads features beside tokens."""
    return hasattr(lm, "fuse") and hasattr(lm, "body")


def lm_hidden(lm, kv: KV, tokens: torch.Tensor, anc: torch.Tensor, depth: torch.Tensor, ok: torch.Tensor,
              feats: torch.Tensor | None = None) -> torch.Tensor:
    """Run `tokens` (B, N) as new cache entries; node i sees live cache slots and nodes j with anc[b, i, j].

    depth (B, N): position offset of each node from the row's next position; ok (B, N): False for padding;
    feats (B, N, d): the features a feature draft reads beside the tokens. Returns the last hidden states
    (B, N, d) (after the final norm: the features the LM head reads). The new entries stay in the cache,
    marked live where ok.
    """
    B, N = tokens.shape
    past = kv.length
    allowed = torch.cat([kv.valid[:, None, :].expand(B, N, past), anc & ok[:, None, :]], dim=2)  # (B, N, past+N)
    allowed[:, torch.arange(N), past + torch.arange(N)] = True  # a node always sees itself (no empty rows)
    mask = additive_mask(allowed, _dtype(lm))  # (B, 1, N, past+N)
    pos = kv.n_pos[:, None] + depth  # (B, N)
    if is_feature_draft(lm):
        body, x = lm.body, lm.fuse(tokens, feats)
    else:
        body = lm.base_model
        x = body.embed_tokens(tokens)
    hidden = body_forward(body, x, mask, pos, kv.cache)  # (B, N, d)
    kv.valid = torch.cat([kv.valid, ok], dim=1)
    return hidden


def lm_forward(lm, kv: KV, tokens: torch.Tensor, anc: torch.Tensor, depth: torch.Tensor, ok: torch.Tensor,
               vocab: torch.Tensor | None = None, at: torch.Tensor | None = None,
               feats: torch.Tensor | None = None) -> torch.Tensor:
    """`lm_hidden` then the LM head: logits (B, N, V) (or over `vocab` (V',)); with `at` (B,) only at that node, (B, V)."""
    hidden = lm_hidden(lm, kv, tokens, anc, depth, ok, feats)
    if at is not None:
        hidden = hidden[torch.arange(tokens.shape[0], device=hidden.device), at]  # (B, d)
    return head(lm, hidden, vocab)


_HEAD_ROWS: dict = {}  # (weight, vocab) -> the weight's vocab rows, contiguous: gathered once, not per draft call


def head_rows(w: torch.Tensor, vocab: torch.Tensor) -> torch.Tensor:
    """w[vocab] (V', d), kept while w and vocab are unchanged (a profile showed the gather at 7 % of a step)."""
    if torch.is_grad_enabled() and w.requires_grad:  # training through the head: no caching of a graph
        return w[vocab]
    key = (id(w), id(vocab))
    hit = _HEAD_ROWS.get(key)
    if hit is not None and hit[0] is w and hit[1] is vocab and hit[2] == w._version:
        return hit[3]
    rows = w[vocab].contiguous()
    while len(_HEAD_ROWS) >= 4:  # an in-place update of w bumps w._version, which the check above compares
        _HEAD_ROWS.pop(next(iter(_HEAD_ROWS)))
    _HEAD_ROWS[key] = (w, vocab, w._version, rows)
    return rows


def head(lm, hidden: torch.Tensor, vocab: torch.Tensor | None = None) -> torch.Tensor:
    """The LM head on hidden states (..., d) -> float logits (..., V), or over the rows `vocab` only."""
    w = lm.get_output_embeddings().weight
    if vocab is not None:
        w = head_rows(w, vocab)
    if kernel.active():  # inside `kernel.fast_linears`: the skinny verify kernel (few rows), else torch
        return kernel.linear(hidden, w).float()
    return (hidden @ w.T).float()


def _dtype(lm) -> torch.dtype:
    return next(lm.parameters()).dtype


def prefill(lm, kv: KV, rows: list[list[int]], vocab=None, pad: int = 0, feats: list[torch.Tensor] | None = None,
            return_hidden: bool = False):
    """Append ragged token lists (one per row) to the cache as committed text; logits at each row's last token.

    feats: per row (len(row), d) features for a feature draft. With return_hidden, also returns the hidden
    states (B, N, d) of every new token (right-padded) and the row lengths (B,).
    """
    device = kv.valid.device
    lens = torch.tensor([len(r) for r in rows], device=device)
    N = int(lens.max())
    tokens = torch.tensor([r + [pad] * (N - len(r)) for r in rows], device=device)  # (B, N) right-padded
    ar = torch.arange(N, device=device)
    ok = ar[None, :] < lens[:, None]
    anc = (ar[None, :, None] >= ar[None, None, :]).expand(len(rows), N, N)  # causal within the chunk
    f = None
    if feats is not None:
        f = torch.nn.utils.rnn.pad_sequence(list(feats), batch_first=True)  # (B, N, d) right-padded
    hidden = lm_hidden(lm, kv, tokens, anc, ar[None, :].expand(len(rows), N), ok, f)
    kv.n_pos = kv.n_pos + lens
    last = hidden[torch.arange(len(rows), device=device), lens - 1]  # (B, d)
    logits = head(lm, last, vocab)  # (B, V) at each row's last token
    return (logits, hidden, lens) if return_hidden else logits


# ----------------------------------------------------------------------------- policies
@dataclass
class LevelInfo:
    """What a policy sees when choosing the next level's width: candidates' cumulative log-probs, sorted."""

    level: int                 # 1 = children of the root
    scores: torch.Tensor       # (B, n_cand) cumulative draft log-probs, descending per row
    context: int               # mean committed length (tokens) of the batch
    batch: int


@runtime_checkable
class TreePolicy(Protocol):
    """What `generate` asks of a tree-shape policy; FixedTree and CastPolicy (nblib.cast.policy) satisfy it."""

    top_k: int  # children proposed per expanded node

    def reset(self) -> None:
        """Forget per-call state; called once at the start of every generate call."""

    def width(self, info: LevelInfo) -> int:
        """How many of the level's candidates (info.scores, descending) to keep and expand."""

    def go_deeper(self, level: int, kept: torch.Tensor, info: LevelInfo) -> bool:
        """Whether to draft another level below `level` (capped at MAX_TREE_DEPTH levels regardless)."""

    def n_verify(self, scores: torch.Tensor, context: int) -> int:
        """How many of the drafted nodes (scores (B, n) descending) the target verifies."""


POLICY_METHODS = ("reset()", "width(info)", "go_deeper(level, kept, info)", "n_verify(scores, context)")


def check_policy(policy) -> None:
    """Raise a TypeError naming what a policy object lacks of TreePolicy (top_k: int and four methods)."""
    missing = [m for m in POLICY_METHODS if not callable(getattr(policy, m.split("(")[0], None))]
    k = getattr(policy, "top_k", None)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        missing.insert(0, f"top_k: a positive int (got {k!r})")
    if missing:
        raise TypeError(f"{type(policy).__name__} is not a tree policy: it lacks {', '.join(missing)}; a policy "
                        f"needs top_k: int, {', '.join(POLICY_METHODS)} (see nblib.cast.tree.TreePolicy)")


def check_depth(name: str, depth) -> None:
    """Raise a ValueError unless `depth` is an int in 1..MAX_TREE_DEPTH."""
    if not isinstance(depth, numbers.Integral) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"{name} must be a positive integer, got {depth!r}")
    if depth > MAX_TREE_DEPTH:
        raise ValueError(f"{name}={depth} is above MAX_TREE_DEPTH={MAX_TREE_DEPTH}: draft trees are capped at "
                         f"{MAX_TREE_DEPTH} levels")


class FixedTree:
    """EAGLE-2's rule: expand the top_k best nodes per level, `depth` levels, verify the best `budget` nodes."""

    def __init__(self, depth: int = 5, top_k: int = 8, budget: int = 32):
        for name, v in (("depth", depth), ("top_k", top_k), ("budget", budget)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:   # numpy ints too, not bools
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        check_depth("depth", depth)
        self.depth, self.top_k, self.budget = int(depth), int(top_k), int(budget)

    def reset(self) -> None:
        """Forget any state between generate calls (none for a fixed tree)."""

    def width(self, info: LevelInfo) -> int:
        """How many of the level's candidates to keep (and expand)."""
        return min(self.top_k, info.scores.shape[1])

    def go_deeper(self, level: int, kept: torch.Tensor, info: LevelInfo) -> bool:
        """Whether to draft another level below `level`."""
        return level < self.depth

    def n_verify(self, scores: torch.Tensor, context: int) -> int:
        """How many of the drafted nodes (scores (B, n) descending) the target verifies."""
        return min(self.budget, scores.shape[1])

    def __repr__(self) -> str:
        return f"FixedTree(depth={self.depth}, top_k={self.top_k}, budget={self.budget})"


class NoDraft(FixedTree):
    """Never drafts: every step the target decodes the root alone (the plain loop, inside `generate`'s machinery)."""

    def __init__(self):
        super().__init__(depth=1, top_k=1, budget=1)

    def should_draft(self, batch: int, context: int) -> bool:
        """Never: each step verifies the root only."""
        return False

    def __repr__(self) -> str:
        return "NoDraft()"


def chain(depth: int) -> FixedTree:
    """A chain draft: one candidate per level, `depth` tokens verified (classic speculative decoding)."""
    return FixedTree(depth=depth, top_k=1, budget=depth)


# ----------------------------------------------------------------------------- one step
@dataclass
class Tree:
    """A verified tree for one decoding step (row-major over the batch), kept for drawing and tests."""

    tokens: torch.Tensor     # (B, 1+m) root first, then drafted nodes in generation order
    parent: torch.Tensor     # (B, 1+m) index of the parent node (root: itself)
    depth: torch.Tensor      # (B, 1+m) 0 for the root
    score: torch.Tensor      # (B, 1+m) cumulative draft log-prob (root: 0)
    accepted: torch.Tensor   # (B, 1+m) bool, on the accepted path
    bonus: torch.Tensor      # (B,) the target's token after the accepted path
    drafted: int = 0         # nodes drafted before reranking (per row)


def ancestors(parent: torch.Tensor, max_depth: int) -> torch.Tensor:
    """Ancestor-or-self matrix (B, N, N) from parent indices (B, N) (root's parent = itself)."""
    B, N = parent.shape
    anc = torch.eye(N, dtype=torch.bool, device=parent.device).expand(B, N, N).clone()
    hop = parent.clone()  # (B, N) k-th ancestor
    for _ in range(max_depth):
        anc.scatter_(2, hop[:, :, None], True)
        hop = parent.gather(1, hop)
    return anc


def draft_tree(draft, vocab, dkv: KV, root_logits: torch.Tensor, policy: TreePolicy, context: int,
               timings: dict | None = None, root_h: torch.Tensor | None = None) -> dict:
    """Grow the draft tree level by level (at most MAX_TREE_DEPTH); return all drafted nodes per row.

    The nodes come as tokens, parents, depths and scores. root_h (B, d): a feature draft's predicted feature
    after the root; each fed node then reads its parent's predicted feature beside its own token.
    """
    B = root_logits.shape[0]
    dev = root_logits.device
    ids = vocab
    logp = torch.log_softmax(root_logits, -1)  # (B, V')
    k0 = min(policy.top_k, logp.shape[1])
    sc, ix = logp.topk(k0, dim=-1)  # (B, k0)
    tok = ids[ix] if ids is not None else ix
    nodes_tok, nodes_par, nodes_dep, nodes_sc = [tok], [torch.full_like(ix, -1)], [torch.ones_like(ix)], [sc]
    n_nodes = k0
    # the frontier = nodes of the last level kept for expansion; their global node ids
    cand_sc, cand_id = sc, torch.arange(k0, device=dev).expand(B, k0)
    fed_ids = torch.empty(B, 0, dtype=torch.long, device=dev)  # global node ids fed to the draft, in order
    fed_anc = torch.zeros(B, 0, 0, dtype=torch.bool, device=dev)
    fed_h = None if root_h is None else root_h.new_zeros(B, 0, root_h.shape[-1])  # (B, F, d) fed nodes' outputs
    widths: list[int] = []
    base = dkv.length
    level = 1
    while True:  # bounded: stops at MAX_TREE_DEPTH levels
        order = cand_sc.argsort(dim=1, descending=True, stable=True)
        cand_sc, cand_id = cand_sc.gather(1, order), cand_id.gather(1, order)
        info = LevelInfo(level, cand_sc, context, B)
        w = max(1, min(int(policy.width(info)), cand_sc.shape[1]))
        keep_sc, keep_id = cand_sc[:, :w], cand_id[:, :w]  # (B, w)
        deeper = bool(policy.go_deeper(level, keep_sc, info))  # asked even at the cap: policies keep state
        if not deeper or level >= MAX_TREE_DEPTH:
            widths.append(w)
            break
        # feed the kept frontier to the draft: each sees the prefix, its fed ancestors and itself
        all_tok, all_par = torch.cat(nodes_tok, 1), torch.cat(nodes_par, 1)
        f_tok = all_tok.gather(1, keep_id)
        f_gpar = all_par.gather(1, keep_id)  # parent's global id (-1 = root)
        # position of each frontier node's parent among fed nodes
        if fed_ids.shape[1]:
            match = (fed_ids[:, None, :] == f_gpar[:, :, None])  # (B, w, F)
            ppos = torch.where(match.any(-1), match.float().argmax(-1), torch.full_like(f_gpar, -1))
        else:
            ppos = torch.full_like(f_gpar, -1)
        F_ = fed_ids.shape[1]
        # ancestors of the new nodes among the fed nodes: the parent's ancestor-or-self row
        if F_:
            rows = fed_anc.gather(1, ppos.clamp(min=0)[:, :, None].expand(-1, -1, F_)) & (ppos >= 0)[:, :, None]
        else:
            rows = torch.zeros(B, w, 0, dtype=torch.bool, device=dev)
        anc_new = torch.cat([rows, torch.eye(w, dtype=torch.bool, device=dev).expand(B, w, w)], 2)  # (B, w, F+w)
        t0 = time.perf_counter()
        f_feat = None
        if root_h is not None:  # each node reads its parent's predicted feature: the root's or a fed node's
            f_feat = root_h[:, None, :].expand(-1, w, -1)
            if F_:
                from_fed = fed_h.gather(1, ppos.clamp(min=0)[:, :, None].expand(-1, -1, fed_h.shape[-1]))
                f_feat = torch.where((ppos >= 0)[:, :, None], from_fed, f_feat)
        logits, h_new = _forward_tree_level(draft, vocab, dkv, base, f_tok, rows, level, f_feat)  # (B, w, V')
        if fed_h is not None:
            fed_h = torch.cat([fed_h, h_new], 1)
        if timings is not None:
            timings.setdefault("draft_levels", []).append(time.perf_counter() - t0)
        widths.append(w)
        fed_ids = torch.cat([fed_ids, keep_id], 1)
        full = torch.zeros(B, F_ + w, F_ + w, dtype=torch.bool, device=dev)
        if F_:
            full[:, :F_, :F_] = fed_anc
        full[:, F_:, :] = anc_new
        fed_anc = full  # (B, F, F) ancestor-or-self among fed nodes
        lp = torch.log_softmax(logits, -1)  # (B, w, V')
        k = min(policy.top_k, lp.shape[-1])
        csc, cix = lp.topk(k, dim=-1)  # (B, w, k)
        csc = csc + keep_sc[:, :, None]
        ctok = ids[cix] if ids is not None else cix
        nodes_tok.append(ctok.reshape(B, -1))
        nodes_par.append(keep_id[:, :, None].expand(-1, -1, k).reshape(B, -1))
        nodes_dep.append(torch.full((B, w * k), level + 1, dtype=torch.long, device=dev))
        nodes_sc.append(csc.reshape(B, -1))
        cand_sc = csc.reshape(B, -1)
        cand_id = torch.arange(n_nodes, n_nodes + w * k, device=dev).expand(B, -1)
        n_nodes += w * k
        level += 1
    dkv.truncate(base)  # the tree's draft entries are never committed
    return {"tok": torch.cat(nodes_tok, 1), "par": torch.cat(nodes_par, 1), "dep": torch.cat(nodes_dep, 1),
            "sc": torch.cat(nodes_sc, 1), "levels": level,
            "widths": widths}


def _forward_tree_level(draft, vocab, dkv: KV, base: int, f_tok, rows, level, f_feat=None):
    """Feed one tree level to the draft: visibility = committed prefix + fed ancestors (rows) + self.

    Returns the level's logits (B, w, V') and hidden states (B, w, d).
    """
    B, w = f_tok.shape
    # slots [base, base+F) hold the fed nodes; show each new node only its ancestors among them
    committed = dkv.valid[:, :base]
    allowed = torch.cat([committed[:, None, :].expand(B, w, base), rows,
                         torch.eye(w, dtype=torch.bool, device=f_tok.device).expand(B, w, w)], 2)
    mask = additive_mask(allowed, _dtype(draft))  # (B, 1, w, past+w)
    pos = dkv.n_pos[:, None] + (level - 1) + torch.zeros_like(f_tok)  # root sits at n_pos - 1
    if is_feature_draft(draft):
        body, x = draft.body, draft.fuse(f_tok, f_feat)
    else:
        body = draft.base_model
        x = body.embed_tokens(f_tok)
    h = body_forward(body, x, mask, pos, dkv.cache)  # (B, w, d)
    dkv.valid = torch.cat([dkv.valid, torch.ones(B, w, dtype=torch.bool, device=f_tok.device)], 1)
    return head(draft, h, vocab), h


def select_nodes(nodes: dict, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rerank: the m best drafted nodes per row (ancestor-closed), as a tree rooted at index 0.

    Returns tokens, parent, depth, score, each (B, 1+m), nodes in generation order after the root.
    """
    sc = nodes["sc"]
    B, n = sc.shape
    m = min(m, n)
    # stable descending sort: a parent (score >= child's, created earlier) always precedes its children
    order = sc.argsort(dim=1, descending=True, stable=True)[:, :m]
    order = order.sort(dim=1).values  # generation order: parents first
    tok = nodes["tok"].gather(1, order)
    gpar = nodes["par"].gather(1, order)  # global parent id or -1
    match = order[:, None, :] == gpar[:, :, None]  # (B, m, m)
    has = match.any(-1)
    if not bool(torch.all(has | (gpar < 0))):
        raise RuntimeError("reranked draft tree is not ancestor-closed")
    par = torch.where(has, match.float().argmax(-1) + 1, torch.zeros_like(gpar))
    z = torch.zeros(B, 1, dtype=torch.long, device=sc.device)
    return (torch.cat([z, tok], 1), torch.cat([z, par], 1), torch.cat([z, nodes["dep"].gather(1, order)], 1),
            torch.cat([z.float(), sc.gather(1, order)], 1))


def verify(target, tkv: KV, root: torch.Tensor, tok, par, dep, lean: bool = True, features: bool = False):
    """One target forward over root + tree; returns accepted mask (B, N), deepest accepted index (B,), bonus (B,).

    Leaves only the accepted path's entries in the target cache. lean: the LM head runs only where its
    output is needed, at nodes with children (is a child's token the target's choice?) and at the deepest
    accepted node (the bonus token), not at every leaf; inside `kernel.fast_linears` with few rows it runs once
    on every node instead (the skinny kernel's cost barely grows with rows, and it then reads the head once).
    With features, also returns the target's features along the accepted path (B, A, d) in depth order, root first (right-padded past each row's path).
    """
    tok = tok.clone()
    tok[:, 0] = root
    B, N = tok.shape
    max_d = int(dep.max())
    anc = ancestors(par, max_d)  # (B, N, N)
    ok = torch.ones(B, N, dtype=torch.bool, device=tok.device)
    past = tkv.length
    hidden = lm_hidden(target, tkv, tok, anc, dep, ok)  # (B, N, d)
    full = lean and kernel.active() and B * N <= kernel.row_limit()
    if full:  # the skinny kernel reads the head's weights once for all N rows: one pass beats two
        greedy = head(target, hidden).argmax(-1)  # (B, N)
    elif lean:
        internal = torch.zeros(B, N, dtype=torch.bool, device=tok.device)
        internal.scatter_(1, par[:, 1:], True)  # nodes that are some node's parent
        cols = internal.any(0).nonzero()[:, 0]  # (n_int,) columns with children in any row
        greedy = torch.zeros(B, N, dtype=torch.long, device=tok.device)
        greedy[:, cols] = head(target, hidden[:, cols]).argmax(-1)
    else:
        greedy = head(target, hidden).argmax(-1)  # (B, N) the target's next token after each node
    good = tok == greedy.gather(1, par)  # node's token equals the target's choice at its parent
    good[:, 0] = True
    accepted = (anc & ~good[:, None, :]).sum(-1) == 0  # every ancestor-or-self is good
    last = torch.where(accepted, dep, torch.full_like(dep, -1)).argmax(1)  # (B,) deepest accepted node
    rows = torch.arange(B, device=tok.device)
    bonus = head(target, hidden[rows, last]).argmax(-1) if lean and not full else greedy.gather(1, last[:, None])[:, 0]
    on_path, keep_idx = keep_path(tkv, past, last, dep, anc & accepted[:, None, :])
    if features:
        return on_path, last, bonus, hidden.gather(1, keep_idx[:, :, None].expand(-1, -1, hidden.shape[-1]))
    return on_path, last, bonus


def keep_path(tkv: KV, past: int, last: torch.Tensor, dep: torch.Tensor, anc: torch.Tensor):
    """Keep only the path root..last (B,) of the verified tree in the target cache, in depth order.

    Returns the path as a mask over the tree's nodes (B, N) and the kept node indices (B, A) (padded past each
    row's path end).
    """
    B, N = dep.shape
    path_d = dep.gather(1, last[:, None])[:, 0]  # (B,)
    A = int(path_d.max()) + 1
    on_path = anc.gather(1, last[:, None, None].expand(-1, 1, N))[:, 0]  # (B, N) ancestors-or-self of last
    # order along the path by depth; nodes not on the path sort after
    key = torch.where(on_path, dep, torch.full_like(dep, 10**6))
    srt = key.argsort(dim=1, stable=True)[:, :A]
    keep_ok = torch.arange(A, device=dep.device)[None, :] <= path_d[:, None]
    keep_idx = torch.where(keep_ok, srt, torch.zeros_like(srt))
    tkv.keep(past, keep_idx, keep_ok)
    return on_path, keep_idx


def verify_sampled(target, tkv: KV, root: torch.Tensor, tok, par, dep, sampling, generator,
                   features: bool = False):
    """One target forward over root + tree, then recursive rejection sampling down the tree (lossless sampling).

    At a node whose tokens so far are accepted, with the target's sampling distribution p there, the node's
    children (drafted tokens, best first) are tried in turn: child token x is accepted with probability
    r(x) / sum(r), where r is p with every child rejected so far removed; on acceptance the walk moves to the
    child. When every child is rejected (or the node is a leaf) the bonus token is drawn from r. A child is a
    point-mass proposal, so each emitted token is distributed exactly as p (P(first child) = p(x1); P(second) =
    (1 - p(x1)) p(x2) / (1 - p(x1)); ...; the rest by r). Same returns as `verify`.
    """
    tok = tok.clone()
    tok[:, 0] = root
    B, N = tok.shape
    anc = ancestors(par, int(dep.max()))
    ok = torch.ones(B, N, dtype=torch.bool, device=tok.device)
    past = tkv.length
    hidden = lm_hidden(target, tkv, tok, anc, dep, ok)          # (B, N, d)
    par_l, tok_l = par.tolist(), tok.tolist()

    def p_at(b: int, node: int) -> torch.Tensor:                 # (V,) the target's distribution after a node:
        return sampling.probs(head(target, hidden[b, node][None]))[0]   # the head runs only where the walk goes

    last = torch.zeros(B, dtype=torch.long, device=tok.device)
    bonus = torch.zeros(B, dtype=torch.long, device=tok.device)
    for b in range(B):
        children: dict[int, list[int]] = {}
        for i in range(1, N):
            children.setdefault(par_l[b][i], []).append(i)      # generation order: best draft score first
        node = 0
        while True:
            r = p_at(b, node)
            moved = False
            for c in children.get(node, []):
                x = tok_l[b][c]
                total = float(r.sum())
                if r[x] <= 0:
                    continue                                     # the target never samples it here: reject
                u = float(torch.rand((), generator=generator, device=r.device))
                if u * total < float(r[x]):
                    node, moved = c, True
                    break
                r[x] = 0.0
            if not moved:
                bonus[b] = torch.multinomial(r / r.sum(), 1, generator=generator)[0]
                break
        last[b] = node
    on_path, keep_idx = keep_path(tkv, past, last, dep, anc)
    if features:
        return on_path, last, bonus, hidden.gather(1, keep_idx[:, :, None].expand(-1, -1, hidden.shape[-1]))
    return on_path, last, bonus


def unpack_draft(draft) -> tuple[torch.nn.Module, torch.Tensor | None]:
    """(model, draft vocabulary) of a draft: an nblib.cast.draft.Draft, a FeatureDraft, or a bare causal LM."""
    if hasattr(draft, "vocab") and hasattr(draft, "model"):  # an nblib.cast.draft.Draft
        return draft.model, draft.vocab
    if is_feature_draft(draft):
        return draft, draft.vocab
    return draft, None


# ----------------------------------------------------------------------------- generation
@dataclass
class SpecResult:
    """Output of speculative decoding: new token ids per prompt and what each step did."""

    sequences: list[list[int]]                 # new tokens per prompt (eos included when hit)
    steps: int = 0                             # target calls after the prefill
    accepted: list[float] = field(default_factory=list)  # per step: mean tokens emitted per active row
    emitted: int = 0                           # total new tokens
    row_calls: int = 0                         # sum over target calls (prefill included) of the rows decoded
    seconds: float = 0.0                       # wall time of decoding (prefill included)
    draft_seconds: float = 0.0
    verify_seconds: float = 0.0
    trees: list[Tree] = field(default_factory=list)  # recorded trees (when record_trees)
    shapes: list[tuple[int, int, int]] = field(default_factory=list)  # per step: (levels, max width, verified)

    @property
    def mean_accepted(self) -> float:
        """Mean tokens emitted per speculative step and row (accepted drafts + 1 bonus)."""
        return sum(self.accepted) / max(1, len(self.accepted))

    @property
    def tokens_per_call(self) -> float:
        """New tokens per row per target call, the prefill (which emits one token) included."""
        return self.emitted / max(1, self.row_calls)

    @property
    def tokens_per_s(self) -> float:
        """New tokens per second over the whole call."""
        return self.emitted / max(self.seconds, 1e-9)


def _as_rows(prompts) -> list[list[int]]:
    """Normalise prompts (list of id lists, or a 2D tensor without padding) to lists of ints."""
    if isinstance(prompts, torch.Tensor):
        if prompts.dim() != 2:
            raise ValueError(f"prompt ids must be 2D (batch, tokens), got shape {tuple(prompts.shape)}")
        prompts = prompts.tolist()
    rows = [list(map(int, p)) for p in prompts]
    if not rows:
        raise ValueError("no prompts given")
    for i, r in enumerate(rows):
        if len(r) == 0:
            raise ValueError(f"prompt {i} is empty: speculative decoding needs at least one prompt token")
    return rows


def check_pair(target, draft, vocab: torch.Tensor | None, policy) -> None:
    """Raise one clear error when the draft cannot serve the target or the policy is malformed."""
    tv, dv = target.config.vocab_size, draft.config.vocab_size
    if tv != dv:
        raise ValueError(f"the draft's vocabulary ({dv} tokens) differs from the target's ({tv}): "
                         "a draft must share the target's tokenizer")
    tt, dt = getattr(target.config, "_tokenizer_name", None), getattr(draft.config, "_tokenizer_name", None)
    if tt and dt and tt != dt:
        raise ValueError(f"the draft uses tokenizer {dt!r} but the target uses {tt!r}")
    tw, dw = target.config.hidden_size, draft.config.hidden_size
    if is_feature_draft(draft) and tw != dw:
        raise ValueError(f"the draft's width ({dw}) differs from the target's ({tw}): a draft shares the target's "
                         "embeddings and reads its features, so it must be trained for this target")
    check_policy(policy)
    n = len(vocab) if vocab is not None else dv
    k = policy.top_k
    if k > n:
        raise ValueError(f"top_k={k} is larger than the draft vocabulary ({n} tokens)")


def generate(target, draft, prompts, max_new_tokens: int = 64, policy: TreePolicy | None = None,
             eos_token_id: int | None = None, record_trees: bool = False, kernels: bool = True,
             sampling: Sampling | None = None) -> SpecResult:
    """Speculative decoding of a batch of prompts (list of token-id lists); lossless w.r.t. the target.

    Greedy by default (identical tokens to the target's greedy decoding); with `sampling` (a `Sampling` with
    temperature > 0 and top-p) every emitted token is drawn from the target's sampling distribution by
    recursive rejection sampling over the tree (`verify_sampled`), so the output is distributed as plain
    sampling's. kernels: multiply with the skinny verify kernel (`nblib.cast.kernel`) where it runs.
    """
    sampling = check_sampling(sampling)
    if sampling is not None and sampling.greedy:
        sampling = None                                  # temperature 0: today's greedy path, token for token
    policy = policy if policy is not None else FixedTree()
    draft, vocab = unpack_draft(draft)
    feat = is_feature_draft(draft)  # a feature draft reads the target's features beside the tokens
    check_pair(target, draft, vocab, policy)  # checks the policy once against TreePolicy (check_policy)
    rows = _as_rows(prompts)
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    policy.reset()
    dev = next(target.parameters()).device
    B = len(rows)
    out = [[] for _ in range(B)]
    alive = list(range(B))  # original index of each active row
    res = SpecResult(out)
    # optional policy hooks: should_draft(batch, context) (False: this step verifies the root alone, no draft),
    # observe(batch, emitted per row, seconds, drafted) after every step, kernel_rows(batch) (kernel crossover)
    want, observe = getattr(policy, "should_draft", None), getattr(policy, "observe", None)
    rows_limit = policy.kernel_rows(B) if callable(getattr(policy, "kernel_rows", None)) else None
    t_start = time.perf_counter()
    with torch.no_grad(), kernel.fast_linears(target, draft, enabled=kernels, max_rows=rows_limit):
        tkv, dkv = KV(B, dev), KV(B, dev)
        logits0, hid0, lens0 = prefill(target, tkv, rows, return_hidden=True)
        gen = sampling.generator(logits0.device) if sampling is not None else None
        # (B,) the first new token = first root
        first = pick_token(logits0, sampling, gen)
        res.row_calls += B
        roots = first
        pending = [r + [int(t)] for r, t in zip(rows, first.tolist(), strict=True)]  # draft has not seen these yet
        # a feature draft's entries are pairs (feature f_t, token x_{t+1}): the first token has no pair
        pend_f = [hid0[b, :int(n)] for b, n in enumerate(lens0)] if feat else None
        if feat:
            pending = [p[1:] for p in pending]
        del hid0
        for b, t in enumerate(first.tolist()):
            out[b].append(t)
        for _ in range(max_new_tokens + 1):  # bounded: every step emits >= 1 token per live row
            # drop finished rows
            done = [i for i, b in enumerate(alive)
                    if len(out[b]) >= max_new_tokens or (eos_token_id is not None and out[b][-1] == eos_token_id)]
            if done:
                keep = [i for i in range(len(alive)) if i not in done]
                if not keep:
                    break
                sel = torch.tensor(keep, device=dev)
                tkv.select(sel)
                dkv.select(sel)
                roots = roots[sel]
                pending = [pending[i] for i in keep]
                pend_f = [pend_f[i] for i in keep] if feat else None
                alive = [alive[i] for i in keep]
            context = int(tkv.n_pos.float().mean()) + 1
            t0 = time.perf_counter()
            tim: dict = {}
            drafting = True if want is None else bool(want(len(alive), context))
            if drafting:
                if feat:
                    root_logits, d_hid, d_lens = prefill(draft, dkv, pending, vocab, feats=pend_f,
                                                         return_hidden=True)
                    root_h = d_hid[torch.arange(len(pending), device=dev), d_lens - 1]  # (b, d) predicted feature
                else:
                    root_logits, root_h = prefill(draft, dkv, pending, vocab), None  # (b, V') draft after root
                nodes = draft_tree(draft, vocab, dkv, root_logits, policy, context, tim, root_h)
                sc_sorted = nodes["sc"].sort(dim=1, descending=True).values
                m = max(1, int(policy.n_verify(sc_sorted, context)))
                tok, par, dep, sc = select_nodes(nodes, m)
            else:  # no draft: the target decodes the root alone (a plain step); the draft catches up later
                z = torch.zeros(len(alive), 1, dtype=torch.long, device=dev)
                tok, par, dep, sc = roots[:, None].clone(), z, z, z.float()
                nodes = {"levels": 0, "widths": [0], "sc": sc[:, :0]}
            t1 = time.perf_counter()
            if not drafting:  # a plain decode step, as lean as `plain_greedy`'s: no tree mask, no path gather
                got = prefill(target, tkv, [[t] for t in roots.tolist()], return_hidden=feat)
                logits_p = got[0] if feat else got  # (b, V) after the root
                bonus = pick_token(logits_p, sampling, gen)
                path_f = got[1][:, :1] if feat else None  # (b, 1, d) the root's feature
                on_path = torch.ones(len(alive), 1, dtype=torch.bool, device=dev)
            elif sampling is None:
                on_path, last, bonus, path_f = verify(target, tkv, roots, tok, par, dep, features=True)
            else:
                on_path, last, bonus, path_f = verify_sampled(target, tkv, roots, tok, par, dep, sampling, gen,
                                                              features=True)
            t2 = time.perf_counter()
            res.draft_seconds += t1 - t0
            res.verify_seconds += t2 - t1
            res.steps += 1
            res.row_calls += len(alive)
            res.shapes.append((int(nodes["levels"]), max(nodes["widths"]), tok.shape[1] - 1))
            emitted = []
            new_pending, new_f = [], []
            for i, b in enumerate(alive):
                path = tok[i][on_path[i]][dep[i][on_path[i]].argsort()].tolist()[1:]  # accepted drafts, root excluded
                new = path + [int(bonus[i])]
                room = max_new_tokens - len(out[b])
                new = new[:room]
                if eos_token_id is not None and eos_token_id in new:
                    new = new[:new.index(eos_token_id) + 1]
                out[b].extend(new)
                emitted.append(len(new))
                # the tokens the draft has not read yet (all of them since its last call when it did not run)
                new_pending.append(path + [int(bonus[i])] if drafting else pending[i] + path + [int(bonus[i])])
                if feat:  # pairs (root's feature, first accepted), ..., (last accepted's feature, bonus)
                    f_new = path_f[i, :len(path) + 1]
                    new_f.append(f_new if drafting else torch.cat([pend_f[i], f_new]))
            res.accepted.append(sum(emitted) / len(emitted))
            if record_trees:
                res.trees.append(Tree(tok.cpu(), par.cpu(), dep.cpu(), sc.cpu(), on_path.cpu(), bonus.cpu(),
                                      int(nodes["sc"].shape[1])))
            roots = bonus
            pending = new_pending
            pend_f = new_f if feat else None
            tkv.compact()
            dkv.compact()
            if observe is not None:
                observe(len(emitted), res.accepted[-1], time.perf_counter() - t0, drafting)
        else:
            raise RuntimeError(f"speculative decoding did not finish within {max_new_tokens + 1} steps")
    res.seconds = time.perf_counter() - t_start
    res.emitted = sum(len(s) for s in out)
    return res


def greedy_reference(target, prompts, max_new_tokens: int, eos_token_id: int | None = None) -> list[list[int]]:
    """The target's own greedy `generate`, one prompt at a time (no padding): the losslessness reference."""
    rows = _as_rows(prompts)
    dev = next(target.parameters()).device
    outs = []
    with torch.no_grad():
        for r in rows:
            ids = torch.tensor([r], device=dev)
            g = target.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                do_sample=False, eos_token_id=eos_token_id, pad_token_id=eos_token_id or 0)
            new = g[0, len(r):].tolist()
            if eos_token_id is not None and eos_token_id in new:
                new = new[:new.index(eos_token_id) + 1]
            outs.append(new)
    return outs


def plain_greedy(target, prompts, max_new_tokens: int, eos_token_id: int | None = None,
                 kernels: bool = True, sampling: Sampling | None = None) -> SpecResult:
    """Batched autoregressive decoding with the same cache machinery (and kernels) as `generate`.

    Greedy by default; with `sampling`, each token is drawn from `sampling.probs` of the target's logits (the
    reference that speculative sampling must match in distribution).
    """
    sampling = check_sampling(sampling)
    rows = _as_rows(prompts)
    dev = next(target.parameters()).device
    B = len(rows)
    out = [[] for _ in range(B)]
    res = SpecResult(out)
    t0 = time.perf_counter()
    with torch.no_grad(), kernel.fast_linears(target, enabled=kernels):
        kv = KV(B, dev)
        gen = sampling.generator(dev) if sampling is not None else None

        nxt = pick_token(prefill(target, kv, rows), sampling, gen)
        res.row_calls += B
        alive = list(range(B))
        for _ in range(max(1, max_new_tokens) + 1):  # bounded: every step emits one token per live row
            for i, b in enumerate(alive):
                out[b].append(int(nxt[i]))
            keep = [i for i, b in enumerate(alive) if len(out[b]) < max_new_tokens
                    and not (eos_token_id is not None and out[b][-1] == eos_token_id)]
            if not keep:
                break
            if len(keep) < len(alive):
                sel = torch.tensor(keep, device=dev)
                kv.select(sel)
                nxt = nxt[sel]
                alive = [alive[i] for i in keep]
            nxt = pick_token(prefill(target, kv, [[int(t)] for t in nxt.tolist()]), sampling, gen)
            res.steps += 1
            res.row_calls += len(alive)
            res.accepted.append(1.0)
        else:
            raise RuntimeError(f"greedy decoding did not finish within {max(1, max_new_tokens) + 1} steps")
    res.seconds = time.perf_counter() - t0
    res.emitted = sum(len(s) for s in out)
    return res
