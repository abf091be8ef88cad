"""The recipes that produce the committed artefacts: sparsity fine-tuning of each base model, router training.

- `finetune_minilm`: MiniLM with ReLU FFNs, frozen embeddings, LoRA on every
  attention projection and FFN matrix, biases / LayerNorms / head trained in
  full, cross-entropy on multiemo + L1 on the FFN activations (the official BERT
  recipe's penalty), time-boxed.
- `finetune_taskworld`: the task world's `v2-large` Llama with ReLU MLPs, LoRA on
  the MLP matrices, next-token loss on fresh task-world problems + L1.
- `collect_ffn_inputs` / `train_routers`: the FFN inputs of the frozen converted
  model, each expert's true output norm as target, MSE, all layers' routers
  trained together (nblib.training.fit).
"""
from __future__ import annotations

import random
import time

import torch
from torch import nn

from .. import training
from .convert import recording, set_rule
from .data import encode, load_multiemo
from .ffn import ffn_sites, relufy
from .lora import add_lora, delta_state, merge_all
from .moe import MoEFFN
from .sparsity import sparsify_finetune


def minilm_lora_targets(model: nn.Module, attn_rank: int = 8, ffn_rank: int = 16) -> dict[str, int]:
    """LoRA ranks for each attention projection and FFN matrix of an EncoderClassifier's layers."""
    out = {}
    for i in range(len(model.encoder.encoder.layer)):
        p = f"encoder.encoder.layer.{i}"
        for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            out[f"{p}.{n}"] = attn_rank
        out[f"{p}.intermediate.dense"] = ffn_rank
        out[f"{p}.output.dense"] = ffn_rank
    return out


def minilm_batches(tokenizer, reviews, batch: int, max_len: int, seed: int = 0):
    """An endless stream of shuffled tokenised batches of reviews."""
    rng = random.Random(seed)
    order = list(range(len(reviews)))
    while True:
        rng.shuffle(order)
        for i in range(0, len(order) - batch + 1, batch):
            yield encode(tokenizer, [reviews[j] for j in order[i:i + batch]], max_len)


def finetune_minilm(model, tokenizer, *, max_seconds: float = 840, steps: int | None = None, batch: int = 32,
                    max_len: int = 64, lr: float = 5e-4, weight: float = 3e-4, penalty: str = "l1",
                    attn_rank: int = 8, ffn_rank: int = 16, n_train: int | None = None, seed: int = 0,
                    progress: bool = True):
    """Sparsity fine-tuning of an EncoderClassifier on multiemo; returns (merged model, delta state, History)."""
    relufy(model)
    for p in model.parameters():
        p.requires_grad_(False)
    add_lora(model, minilm_lora_targets(model, attn_rank, ffn_rank))
    full = []
    for name, p in model.named_parameters():
        trainable = "lora_" in name or name.startswith("head.") or (
            name.startswith("encoder.encoder.") and (name.endswith(".bias") or "LayerNorm" in name))
        p.requires_grad_(trainable)
        if trainable and "lora_" not in name:
            full.append(name)
    stream = minilm_batches(tokenizer, load_multiemo("train", n_train), batch, max_len, seed)
    loss = nn.CrossEntropyLoss()

    def task_loss(_step):
        b = next(stream)
        return loss(model(b["input_ids"], b["attention_mask"]), b["labels"]), b["attention_mask"]

    params = [p for p in model.parameters() if p.requires_grad]
    hist = sparsify_finetune(model, task_loss, params, steps, lr=lr, penalty=penalty, weight=weight,
                             weight_schedule="linear", max_seconds=max_seconds, clip=1.0,
                             schedule="constant" if steps is None else "linear", log_every=25,
                             progress=progress, desc="minilm sparsify")
    delta = delta_state(model, full)
    merge_all(model)
    return model.eval(), delta, hist


def finetune_taskworld(model, *, steps: int = 300, batch: int = 64, lr: float = 2e-3, weight: float = 2e-4,
                       penalty: str = "l1", rank: int = 16, seed: int = 1, progress: bool = True):
    """Sparsity fine-tuning of the task world's base model (`models.TASKWORLD_BASE`) with ReLU MLPs; (merged
    model, delta, History)."""
    from ..taskworld import problems as T
    from ..taskworld.training import collate

    relufy(model)
    for p in model.parameters():
        p.requires_grad_(False)
    targets = {f"model.layers.{s.index}.mlp.{n}": rank for s in ffn_sites(model)
               for n in ("gate_proj", "up_proj", "down_proj")}
    add_lora(model, targets)
    full = []
    for name, p in model.named_parameters():
        trainable = "lora_" in name or name.endswith("post_attention_layernorm.weight")
        p.requires_grad_(trainable)
        if trainable and "lora_" not in name:
            full.append(name)
    from .models import taskworld_task

    stream = T.iter_problems("train", seed, taskworld_task(), distinct=False)

    def task_loss(_step):
        ids, labels = collate([next(stream) for _ in range(batch)])
        return model(input_ids=ids, labels=labels).loss, (ids != 0).long()

    params = [p for p in model.parameters() if p.requires_grad]
    hist = sparsify_finetune(model, task_loss, params, steps, lr=lr, penalty=penalty, weight=weight,
                             weight_schedule="linear", clip=1.0, schedule="cosine", log_every=50,
                             progress=progress, desc="taskworld sparsify")
    delta = delta_state(model, full)
    merge_all(model)
    return model.eval(), delta, hist


@torch.no_grad()
def collect_ffn_inputs(model, layers: list[MoEFFN], batches, forward, max_tokens: int = 20000) -> list[torch.Tensor]:
    """Each MoE layer's inputs (N, d) over `batches` with every expert on, padding dropped, at most max_tokens."""
    set_rule(layers, "all")
    per = [[] for _ in layers]
    n = 0
    for batch in batches:
        with recording(layers, capture=True):
            forward(model, batch)
        mask = batch.get("attention_mask")
        keep = mask.reshape(-1).bool() if mask is not None else None
        for i, m in enumerate(layers):
            x = torch.cat(m.inputs)
            per[i].append(x[keep] if keep is not None and keep.numel() == x.shape[0] else x)
        n += int(per[0][-1].shape[0])
        if n >= max_tokens:
            break
    return [torch.cat(p)[:max_tokens] for p in per]


def train_routers(layers: list[MoEFFN], inputs: list[torch.Tensor], *, steps: int = 1500, batch: int = 256,
                  lr: float = 1e-3, seed: int = 0, progress: bool = True, max_seconds: float | None = None):
    """Train every layer's router to regress its experts' true output norms (MSE); returns the History."""
    t0 = time.perf_counter()
    targets = [m.expert_norms(x) for m, x in zip(layers, inputs, strict=True)]
    target_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(seed)
    for m in layers:
        m.router.train()
        for p in m.router.parameters():
            p.requires_grad_(True)

    def loss_fn(_step):
        parts = {}
        for i, (m, x, t) in enumerate(zip(layers, inputs, targets, strict=True)):
            idx = torch.randint(0, x.shape[0], (batch,), generator=g)
            parts[f"l{i}"] = nn.functional.mse_loss(m.router(x[idx]), t[idx])
        parts["loss"] = torch.stack(list(parts.values())).mean()
        return parts

    params = [p for m in layers for p in m.router.parameters()]
    hist = training.fit(params, loss_fn, steps, lr=lr, schedule="cosine", clip=1.0, log_every=max(steps // 5, 1),
                        progress=progress, desc="routers", max_seconds=max_seconds)
    for m in layers:
        m.router.eval()
    hist.target_s = target_s
    return hist
