"""Training a task model from scratch on its task mix (scripts/train_taskworld.py runs it)."""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch

from . import problems as T
from .models import EOS, PAD, Arch, build_model, encode, prompt_of

@dataclass(frozen=True)
class TrainSpec:
    """How one task model is trained (stored in its train.json)."""

    name: str
    arch: Arch
    steps: int
    lr: float = 2e-3
    batch: int = 64
    warmup: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    task: T.TaskConfig = field(default_factory=T.TaskConfig)
    focus: str | None = None  # specialists: the kind of step the loss is (mostly) on
    focus_keep: float = 0.1  # share of other-kind step lines that still carry loss
    # ladder models of a given strength: commit the last logged snapshot whose validation accuracy is at most
    # this (None: the final weights). A large model that is strong but not perfect is one stopped in time.
    select_max_val_acc: float | None = None
    init_from: str | None = None  # start from this committed checkpoint's weights (same shape) instead of scratch
    bucket: int = 1  # draw batch x bucket problems, sort by length, train on them as `bucket` batches (less padding)


def collate(problems: Sequence[T.Problem], focus: str | None = None, focus_keep: float = 1.0,
            rng: random.Random | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and labels (B, T) with the prompt and padding masked out (-100).

    With `focus` (a kind of step), step lines of other kinds carry loss only with
    probability `focus_keep`: the model is trained mostly on that kind of step.
    """
    rng = rng or random.Random(0)
    seqs, masks = [], []
    for p in problems:
        prompt = encode(prompt_of(p))
        seq, keep = list(prompt), [False] * len(prompt)
        for line, kind in zip(p.step_lines, p.kinds, strict=True):
            on = focus is None or kind == focus or rng.random() < focus_keep
            ids = encode(line + "\n", bos=False)
            seq += ids
            keep += [on] * len(ids)
        tail = encode(f"{T.ANSWER}{p.answer}", bos=False) + [EOS]
        seq += tail
        keep += [True] * len(tail)
        seqs.append(seq)
        masks.append(keep)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for r, (s, k) in enumerate(zip(seqs, masks, strict=True)):
        ids[r, :len(s)] = torch.tensor(s)
        labels[r, :len(s)] = torch.where(torch.tensor(k), torch.tensor(s), torch.tensor(-100))
    return ids, labels


def train(spec: TrainSpec, log_every: int = 100, eval_fn=None, verbose: bool = True):
    """Train a task model from scratch (or from `init_from`) on its task mix; return (model, record).

    The loop is `nblib.training.fit`: AdamW (betas 0.9/0.98, weight decay on matrices
    only), clip 1.0, transformers' "cosine_warmup_with_min_lr" schedule (warmup
    (step+1)/warmup, then cosine to a 5 % floor). The committed v1 checkpoints were
    trained by the earlier hand-written loop, whose cosine phase ran one step
    behind: progress (step - warmup)/(steps - warmup) instead of transformers'
    (step - warmup + 1)/(steps - warmup); the warmup is identical. Over the
    committed step counts the learning rate differs by at most 1.11 % (mid; tiny
    1.02 %, large 0.60 %), in the cosine tail. The record holds the losses and wall time.
    """
    from tqdm.auto import tqdm

    from ..training import fit, format_row
    from ..zoo import n_params

    if spec.bucket < 1:
        raise ValueError(f"bucket must be >= 1, got {spec.bucket}")
    model = build_model(spec.arch, spec.seed)
    if spec.init_from is not None:
        from .models import load_model

        base = load_model(spec.init_from)
        if base.config.hidden_size != spec.arch.d_model or base.config.num_hidden_layers != spec.arch.n_layers:
            raise ValueError(f"init_from={spec.init_from!r} has another shape than {spec.arch}")
        model.load_state_dict(base.state_dict())
    groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": spec.weight_decay},
              {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    stream = T.iter_problems("train", spec.seed, spec.task, distinct=False)
    mask_rng = random.Random(spec.seed)
    queue: list = []

    def loss_fn(step):
        if not queue:  # batch x bucket problems sorted by length -> `bucket` batches of similar lengths
            pool = sorted((next(stream) for _ in range(spec.batch * spec.bucket)), key=lambda p: len(p.solution))
            chunks = [pool[i:i + spec.batch] for i in range(0, len(pool), spec.batch)]
            if spec.bucket > 1:
                mask_rng.shuffle(chunks)
            queue.extend(chunks)
        ids, labels = collate(queue.pop(0), spec.focus, spec.focus_keep, mask_rng)
        return model(input_ids=ids, labels=labels).loss

    t0 = time.perf_counter()
    hist = fit(groups, loss_fn, spec.steps, lr=spec.lr, optimizer_kwargs={"betas": (0.9, 0.98)},
               schedule="cosine_warmup_with_min_lr", warmup=spec.warmup, schedule_kwargs={"min_lr_rate": 0.05},
               clip=1.0, log_every=log_every, progress=verbose, desc=f"train {spec.name}",
               eval_fn=eval_fn, model=model,
               on_log=(lambda row: tqdm.write(format_row(row, f"[{spec.name}]"))) if verbose else None)
    model.eval()
    record = {"spec": to_plain(spec), "params": n_params(model), "train_wall_s": round(time.perf_counter() - t0, 1),
              "torch_threads": torch.get_num_threads(), "log": hist.log}
    return model, record


def select_snapshot(model, record: dict, snaps: dict, max_val_acc: float) -> dict:
    """Load into `model` the last logged snapshot with val_acc <= max_val_acc; record which one (in place).

    `snaps` maps a log row's index to {"state", "val_acc"}; rows without a snapshot are not candidates. With
    no snapshot under the ceiling, the earliest snapshot is taken.
    """
    log = record["log"]
    if not snaps or max(snaps) >= len(log):
        raise ValueError(f"snapshots {sorted(snaps)} do not match the {len(log)} log rows")
    ok = [i for i in sorted(snaps) if snaps[i]["val_acc"] <= max_val_acc]
    i = ok[-1] if ok else min(snaps)
    model.load_state_dict(snaps[i]["state"])
    model.eval()
    record["selected"] = {"step": log[i]["step"], "val_acc": snaps[i]["val_acc"], "of_steps": log[-1]["step"],
                          "rule": f"the last logged snapshot with validation accuracy <= {max_val_acc}"}
    return record


def to_plain(obj):
    """Dataclasses (nested) as plain dicts and lists, for train.json."""
    if hasattr(obj, "__dataclass_fields__"):
        return {k: to_plain(v) for k, v in asdict(obj).items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
