"""Why step one matters, on a real decoder: SmolLM2-135M's gated MLPs as experts, with and without sparsification.

- `mtbench_sequences`: the evaluation text (30 MT-Bench first-turn questions, each followed by its GPT-4
  reference answer, from data/lwe/mtbench_pairs.jsonl), tokenised one sequence per item.
- `to_experts(model, n_experts)`: every Llama MLP replaced in place by an `ExpertMLP` (the MLP cut into
  equal experts by `experts.split_experts`), run under the oracle dynamic-k rule: per token, expert e runs
  when its TRUE output norm >= tau * the largest (`moe.dynamic_k_mask`; no router), position 0 of each
  sequence optionally kept dense (its massive activations).
- `oracle_curve(model, seqs, taus, keep_first_dense)`: perplexity and expert-FLOPs share per tau.
- `relu_sparsity_finetune`: the time-boxed step one for a decoder: SiLU -> ReLU in the gate, LoRA on the
  MLP matrices, next-token loss + L1 on the MLP hidden activations; `load_finetuned` re-applies the
  shipped LoRA factors.
- `decode_step_ratio` / `smollm2_bytes`: the batch-1 roofline (MODELLED, not measured): decode time ~ weight
  bytes read, so skipping a share of MLP experts saves that share of the MLP bytes.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch import nn

from .. import checks
from .experts import experts_from_partition, split_experts
from .ffn import ffn_sites, ffn_weights, relufy
from .lora import add_lora, apply_delta, delta_state, merge_all
from .moe import MoEFFN, check_tau, dynamic_k_mask
from .sparsity import activation_stats, sparsify_finetune

ROOT = Path(__file__).resolve().parents[2]
MTBENCH = ROOT / "data" / "lwe" / "mtbench_pairs.jsonl"
ORACLE_JSON = ROOT / "data" / "d2dmoe" / "smollm2_oracle.json"
LORA_FILE = ROOT / "data" / "d2dmoe" / "smollm2_relu_lora.safetensors"
REBUILD = "python scripts/d2dmoe_smollm2.py"


# ---------------------------------------------------------------------------------------------- data
def mtbench_texts(path: Path | str = MTBENCH) -> list[str]:
    """The 30 MT-Bench evaluation texts: each question, a blank line, its GPT-4 reference answer."""
    from ..cache import read_jsonl

    rows = [r for r in read_jsonl(Path(path), rebuild="python scripts/build_lwe_data.py --mtbench") if "question" in r]
    return [r["question"] + "\n\n" + r["output1" if r["better"] == "Output1" else "output2"] for r in rows]


def mtbench_sequences(tokenizer, max_len: int = 256, n: int | None = None) -> list[torch.Tensor]:
    """The MT-Bench evaluation texts as 1-D token-id tensors (at most `max_len` tokens each, first `n` items)."""
    texts = mtbench_texts()[:n]
    return [torch.tensor(tokenizer(t)["input_ids"][:max_len]) for t in texts]


# ---------------------------------------------------------------------------------------------- experts
class ExpertMLP(nn.Module):
    """A Llama gated MLP cut into experts, run under the oracle dynamic-k rule (true output norms, no router).

    Every expert's output is computed (an accuracy measurement, not a fast path); expert e counts as executed
    for token n when it is kept: norm_e >= tau * max norm (tau = 0: every expert). With `keep_first_dense`
    position 0 of every sequence runs all experts. `executed` / `tokens` accumulate (excluding position 0)
    and `executed_all` / `tokens_all` (including it) while `record` is on.
    """

    def __init__(self, moe: MoEFFN, tau: float = 0.0, keep_first_dense: bool = True):
        super().__init__()
        self.moe = moe
        self.tau, self.keep_first_dense = check_tau(tau), bool(keep_first_dense)
        self.record = False
        self.reset()

    def reset(self) -> None:
        """Zero the executed-expert counters."""
        self.executed = self.tokens = self.executed_all = self.tokens_all = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP output (B, T, d) with the skipped experts' contributions dropped."""
        B, T, d = x.shape
        m = self.moe
        h = m.dense_hidden(x.reshape(-1, d)).reshape(B * T, m.n_experts, m.size)
        out = torch.einsum("nes,esd->ned", h, m.w_out)  # each expert's contribution (N, E, d)
        if self.tau == 0:
            mask = torch.ones(B * T, m.n_experts, dtype=torch.bool, device=x.device)
        else:
            mask = dynamic_k_mask(out.detach().norm(dim=-1), self.tau)
        if self.keep_first_dense:
            mask.view(B, T, -1)[:, 0] = True
        if self.record:
            k = mask.view(B, T, -1).sum(-1)
            self.executed += int(k[:, 1:].sum())
            self.tokens += B * (T - 1)
            self.executed_all += int(k.sum())
            self.tokens_all += B * T
        y = (out * mask.unsqueeze(-1).to(out.dtype)).sum(1)
        if m.b_out is not None:
            y = y + m.b_out
        return y.reshape(B, T, d)


def to_experts(model: nn.Module, n_experts: int = 24, split: str = "kmeans", seed: int = 0,
               keep_first_dense: bool = True) -> list[ExpertMLP]:
    """Replace every gated MLP of a Llama-style model by an ExpertMLP (in place); the list of them.

    `split`: 'kmeans' (balanced k-means of the gate rows, `experts.split_experts`) or 'contiguous' (neurons
    0..s-1, s..2s-1, ...: fast, for tests).
    """
    checks.one_of("split", split, ("kmeans", "contiguous"))
    out = []
    for site in ffn_sites(model):
        if site.kind != "gated":
            raise checks.BadArgument(f"layer {site.index} is a {site.kind!r} FFN: to_experts converts Llama-style "
                                     "gated MLPs (use nblib.d2dmoe.convert for BERT-style models)")
        w = ffn_weights(site)
        if split == "kmeans":
            ex = split_experts(w, n_experts, seed=seed)
        else:
            from .experts import check_expert_count

            size = check_expert_count(w.d_ff, n_experts)
            ex = experts_from_partition(w, torch.arange(w.d_ff).reshape(n_experts, size))
        layer = ExpertMLP(MoEFFN(ex, mode="all"), keep_first_dense=keep_first_dense)
        site.layer.mlp = layer
        out.append(layer)
    return out


def expert_layers(model: nn.Module) -> list[ExpertMLP]:
    """The ExpertMLP modules of a converted model; a clear error when there are none."""
    layers = [m for m in model.modules() if isinstance(m, ExpertMLP)]
    if not layers:
        raise checks.BadArgument("the model has no ExpertMLP: convert it first with to_experts(model)")
    return layers


def set_oracle(model: nn.Module, tau: float, keep_first_dense: bool = True) -> None:
    """Set every ExpertMLP's tau (in [0, 1]) and first-token rule."""
    tau = check_tau(tau)
    for m in expert_layers(model):
        m.tau, m.keep_first_dense = tau, bool(keep_first_dense)


# ---------------------------------------------------------------------------------------------- measurement
@torch.no_grad()
def perplexity(model: nn.Module, seqs: list[torch.Tensor]) -> tuple[float, int]:
    """(perplexity, predicted tokens) of a causal LM over the sequences, each run on its own (no padding)."""
    checks.non_empty("seqs", seqs)
    nll, n = 0.0, 0
    dev = next(model.parameters()).device
    for ids in seqs:
        ids = ids.reshape(1, -1).to(dev)
        if ids.shape[1] < 2:
            continue
        logits = model(input_ids=ids).logits[0, :-1].float()
        nll += float(nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
        n += ids.shape[1] - 1
    return math.exp(nll / n), n


def oracle_curve(model: nn.Module, seqs: list[torch.Tensor], taus, keep_first_dense: bool = True,
                 progress: bool = True) -> list[dict]:
    """Perplexity and expert-FLOPs share per tau under the oracle rule; one dict per tau.

    `flops_share`: executed experts / all experts over the positions the rule routes (position 0 excluded,
    whether or not it is kept dense); `flops_share_all`: over every position, position 0 included (all its
    experts when kept dense). The expert FLOPs per expert are equal, so these are FLOPs shares.
    """
    layers = expert_layers(model)
    rows = []
    for tau in taus:
        set_oracle(model, tau, keep_first_dense)
        for m in layers:
            m.reset()
            m.record = True
        t0 = time.perf_counter()
        try:
            ppl, n = perplexity(model, seqs)
        finally:
            for m in layers:
                m.record = False
        E = layers[0].moe.n_experts
        ex, tok = sum(m.executed for m in layers), sum(m.tokens for m in layers)
        ex_all, tok_all = sum(m.executed_all for m in layers), sum(m.tokens_all for m in layers)
        row = {"tau": float(tau), "keep_first_dense": bool(keep_first_dense), "ppl": ppl, "tokens": n,
               "flops_share": ex / (E * tok), "flops_share_all": ex_all / (E * tok_all),
               "wall_s": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        if progress:
            print(f"  tau {tau:<5} first dense {keep_first_dense!s:<5} ppl {ppl:8.3f}  "
                  f"FLOPs share {row['flops_share']:.3f}  ({row['wall_s']} s)", flush=True)
    set_oracle(model, 0.0, keep_first_dense)
    return rows


def ppl_at_share(rows: list[dict], share: float, key: str = "flops_share") -> float:
    """Perplexity at an expert-FLOPs share, linearly interpolated between the measured points (NaN outside)."""
    pts = sorted((r[key], r["ppl"]) for r in rows)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= share <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (share - x0) / (x1 - x0)
    return float("nan")


def share_at_ppl(rows: list[dict], ppl: float, key: str = "flops_share") -> float:
    """The expert-FLOPs share at which the curve reaches a perplexity (interpolated; NaN when it never does)."""
    pts = sorted(((r[key], r["ppl"]) for r in rows), reverse=True)  # from dense to sparse
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if (y0 - ppl) * (y1 - ppl) <= 0 and y1 != y0:
            return x0 + (x1 - x0) * (ppl - y0) / (y1 - y0)
    return float("nan")


# ---------------------------------------------------------------------------------------------- step one
def mlp_lora_targets(model: nn.Module, rank: int = 8, names=("gate_proj", "up_proj")) -> dict[str, int]:
    """LoRA ranks for the named MLP matrices of every layer of a Llama-style model."""
    checks.whole("rank", rank, low=1)
    prefix = {id(m): n for n, m in model.named_modules()}
    return {f"{prefix[id(site.layer)]}.mlp.{n}": rank for site in ffn_sites(model) for n in names}


def train_windows(tokenizer, window: int = 256, texts: list[str] | None = None) -> list[torch.Tensor]:
    """Training windows of `window` tokens from text SmolLM2 is not evaluated on here (see `training_texts`)."""
    ids: list[int] = []
    for t in texts if texts is not None else training_texts():
        ids.extend(tokenizer(t)["input_ids"] + [tokenizer.eos_token_id])
    return [torch.tensor(ids[i:i + window]) for i in range(0, len(ids) - window + 1, window)]


def training_texts() -> list[str]:
    """Python's own documentation (pydoc_data.topics, PSF licence) interleaved with the stdlib-docstring and
    self-written template prompts of data/cast/train_prompts.jsonl (never MT-Bench, HumanEval or BIG-bench items:
    BIG-bench's canary asks not to train on it)."""
    import random

    import pydoc_data.topics as topics

    from ..cache import read_jsonl

    docs = [v for _, v in sorted(topics.topics.items())]
    bb = [r["prompt"] for r in read_jsonl(ROOT / "data" / "cast" / "train_prompts.jsonl",
                                     rebuild="see data/cast/README.md") if r.get("source") in ("python-stdlib", "template")]
    rng = random.Random(0)
    rng.shuffle(docs)
    rng.shuffle(bb)
    out, j = [], 0
    for d in docs:  # one doc topic, then a handful of prompts
        out.append(d)
        out.extend(bb[j:j + 8])
        j += 8
    return out


def relu_sparsity_finetune(model: nn.Module, windows: list[torch.Tensor], *, max_seconds: float = 720,
                           batch: int = 4, lr: float = 1e-3, weight: float = 1e-4, rank: int = 8,
                           norms: bool = True, seed: int = 0, progress: bool = True):
    """Step one on a decoder: ReLU gates, LoRA on gate/up, next-token loss + L1 on the MLP hidden activations.

    Time-boxed to `max_seconds`; returns (merged model, delta state (fp16), History). The L1 weight ramps
    linearly over the run. With `norms`, the post-attention RMSNorm weights are trained in full too.
    """
    relufy(model)
    for p in model.parameters():
        p.requires_grad_(False)
    add_lora(model, mlp_lora_targets(model, rank))
    full = []
    if norms:
        for n, p in model.named_parameters():
            if n.endswith("post_attention_layernorm.weight"):
                p.requires_grad_(True)
                full.append(n)
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(seed)
    tokens = [0]

    def task_loss(step: int):
        idx = torch.randint(0, len(windows), (batch,), generator=g)
        ids = torch.stack([windows[i] for i in idx.tolist()])
        tokens[0] += ids.numel()
        return model(input_ids=ids, labels=ids).loss, None

    hist = sparsify_finetune(model, task_loss, params, None, lr=lr, penalty="l1", weight=weight,
                             weight_schedule="linear", max_seconds=max_seconds, clip=1.0,
                             log_every=10, progress=progress, desc="relu+L1")
    state = delta_state(model, full)
    merge_all(model)
    for p in model.parameters():
        p.requires_grad_(False)
    hist.tokens = tokens[0]
    return model.eval(), state, hist


def load_finetuned(model: nn.Module, path: Path | str = LORA_FILE) -> nn.Module:
    """ReLU gates plus the shipped LoRA factors merged into a fresh SmolLM2 (in place); returns the model."""
    from ..cache import read_safetensors

    state = read_safetensors(Path(path), rebuild=REBUILD + " --finetune")
    relufy(model)
    return apply_delta(model, state)


@torch.no_grad()
def zero_fraction(model: nn.Module, seqs: list[torch.Tensor]) -> dict:
    """Zero (and non-positive) fraction of the MLP hidden activations h = act(gate x) * (up x) over the sequences."""
    st = activation_stats(model, [{"input_ids": s.reshape(1, -1)} for s in seqs],
                          lambda m, b: m(input_ids=b["input_ids"]))
    st.pop("sample")
    return st


# ---------------------------------------------------------------------------------------------- roofline
def decode_step_ratio(total_bytes: float, mlp_bytes: float, kept_share: float, router_bytes: float = 0.0) -> float:
    """MODELLED batch-1 decode step time vs dense: (non-MLP + kept MLP + router bytes) / total weight bytes.

    At batch 1 decoding is memory-bound, so a step's time ~ the weight bytes it reads; skipping a share of the
    MLP experts skips that share of the MLP weights (the router's weights are read every step).
    """
    total_bytes = checks.number("total_bytes", total_bytes, low=0)
    mlp_bytes = checks.number("mlp_bytes", mlp_bytes, low=0, high=total_bytes)
    kept_share = checks.number("kept_share", kept_share, low=0, high=1)
    router_bytes = checks.number("router_bytes", router_bytes, low=0)
    if total_bytes == 0:
        raise checks.BadArgument("total_bytes must be > 0")
    return (total_bytes - mlp_bytes + kept_share * mlp_bytes + router_bytes) / total_bytes


def smollm2_bytes(config, bytes_per_param: float = 2.0, router_hidden: int = 128, n_experts: int = 24) -> dict:
    """Weight bytes one batch-1 decode step reads, by part, from a Llama config (tied embeddings read once).

    The embedding row lookup is negligible; the (tied) output head reads the whole vocab x d matrix.
    `router` is a D2DMoE two-layer router per layer (d -> router_hidden -> n_experts, with biases).
    """
    d, ff, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    hd = d // config.num_attention_heads
    kv = config.num_key_value_heads * hd
    attn = L * (d * d * 2 + d * kv * 2)
    norms = L * 2 * d + d
    mlp = L * 3 * d * ff
    head = config.vocab_size * d * (1 if getattr(config, "tie_word_embeddings", True) else 2)
    router = L * (d * router_hidden + router_hidden + router_hidden * n_experts + n_experts)
    b = bytes_per_param
    parts = {"attention": attn * b, "norms": norms * b, "mlp": mlp * b, "embeddings_head": head * b,
             "router": router * b}
    parts["total"] = parts["attention"] + parts["norms"] + parts["mlp"] + parts["embeddings_head"]
    return parts


# ---------------------------------------------------------------------------------------------- the record
def load_record(path: Path | str = ORACLE_JSON) -> dict:
    """The shipped SmolLM2 record (data/d2dmoe/smollm2_oracle.json): curves, fine-tune log, roofline, summary."""
    from ..cache import read_json

    return read_json(Path(path), rebuild=REBUILD)


def curve_table(record: dict):
    """Every measured point as a pandas DataFrame: model ('original'/'fine-tuned'), first_dense, tau, ppl,
    ppl_increase (vs the original dense perplexity), flops_share, modelled_decode_step_ratio."""
    import pandas as pd

    base = record["original"]["dense_ppl"]
    rows = []
    for key, name in (("original", "original"), ("after", "fine-tuned")):
        part = record.get(key)
        if not part:
            continue
        for curve, first in (("curve_first_dense", True), ("curve_no_first_dense", False)):
            for r in part[curve]:
                rows.append({"model": name, "first_dense": first, "tau": r["tau"], "ppl": r["ppl"],
                             "ppl_increase": r["ppl"] / base - 1, "flops_share": r["flops_share"],
                             "modelled_decode_step_ratio": r.get("modelled_decode_step_ratio")})
    return pd.DataFrame(rows).sort_values(["model", "first_dense", "flops_share"], ignore_index=True)
