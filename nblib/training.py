"""One training loop for every notebook: `fit` does zero_grad / backward / clip / step on transformers' LR schedules.

    history = fit(model, loss_fn, steps=400, lr=1e-3, schedule="cosine_warmup_with_min_lr", warmup=100,
                  schedule_kwargs={"min_lr_rate": 0.1}, clip=1.0, log_every=50, desc="distil")

`loss_fn(step)` computes one batch's loss: a scalar tensor, or a dict of named
scalar tensors with the total that is back-propagated under "loss" (KOALA's
``{"task", "out_kd", "feat_kd", "loss"}``). The optimizer is AdamW unless asked
otherwise; the schedule is any of transformers' named ones (`SCHEDULES`, built
with `transformers.get_scheduler`). Step-based by default; with ``steps=None``
and `max_seconds` the run is time-boxed and the schedule's clock is wall time
(the fraction of the budget spent maps onto the whole schedule).

The history keeps every step's losses and learning rate, the gradient norm
before clipping, and (with `log_every`) rows averaged over the last `log_every`
steps with the wall time and whatever `eval_fn` returns. A `tqdm.auto` bar
shows progress unless ``progress=False`` (or TQDM_DISABLE is set).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

# the LambdaLR-based schedules of transformers.get_scheduler (reduce_lr_on_plateau and greedy need a metric)
SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
             "inverse_sqrt", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay")
_NO_WARMUP = ("constant",)  # get_scheduler silently ignores num_warmup_steps for these
_OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
_CLOCK_TICKS = 10_000  # time-boxed runs: the schedule is built over this many ticks and read at a fraction of them


@dataclass
class History:
    """What `fit` saw: per-step losses (and named parts), learning rates, gradient norms, and the log rows."""

    records: list[dict[str, float]] = field(default_factory=list)  # one per step: the named losses and "loss"
    lrs: list[float] = field(default_factory=list)  # learning rate of the first param group at each step
    grad_norms: list[float] = field(default_factory=list)  # total gradient norm before clipping (nan: not computed)
    log: list[dict[str, Any]] = field(default_factory=list)  # every `log_every` steps: averages, wall_s, eval
    wall_s: float = 0.0  # wall time of the whole run

    @property
    def losses(self) -> list[float]:
        """The total loss at each step."""
        return [r["loss"] for r in self.records]

    @property
    def steps(self) -> int:
        """How many optimizer steps were taken."""
        return len(self.records)


def _param_groups(params) -> list[dict]:
    """Param groups for the optimizer: a module's trainable parameters, a list of tensors, or of group dicts."""
    if isinstance(params, torch.nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    elif isinstance(params, torch.Tensor):
        raise TypeError("fit takes a module, an iterable of parameters or a list of param-group dicts, not one "
                        "tensor; wrap it in a list")
    params = list(params)
    if not params:
        raise ValueError("fit got no parameters to train (none require grad)")
    if all(isinstance(p, Mapping) for p in params):
        groups = [dict(g) for g in params]
        for g in groups:
            g["params"] = list(g["params"])
        return groups
    if not all(isinstance(p, torch.Tensor) for p in params):
        raise TypeError("fit's params must be all tensors or all param-group dicts")
    return [{"params": params}]


def _optimizer(optimizer, groups: list[dict], lr: float, kwargs: Mapping | None) -> torch.optim.Optimizer:
    """The optimizer: a name in _OPTIMIZERS or a factory called as factory(groups, lr=lr, **kwargs)."""
    if isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError("pass the optimizer's class or name (e.g. torch.optim.SGD or 'sgd'), not an instance: "
                        "fit builds it so that the schedule owns its learning rate")
    if isinstance(optimizer, str):
        if optimizer.lower() not in _OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; use one of {sorted(_OPTIMIZERS)} or a torch "
                             "optimizer class")
        optimizer = _OPTIMIZERS[optimizer.lower()]
    return optimizer(groups, lr=lr, **dict(kwargs or {}))


def make_schedule(optimizer: torch.optim.Optimizer, schedule: str, steps: int, warmup: int = 0,
                  schedule_kwargs: Mapping | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """transformers' named LR schedule on `optimizer` over `steps` steps (a LambdaLR), with clear errors."""
    from transformers import get_scheduler

    if not isinstance(schedule, str) or schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; use one of {list(SCHEDULES)} "
                         "(transformers.get_scheduler names)")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a whole number of steps >= 0, got {warmup!r}")
    if warmup and schedule in _NO_WARMUP:
        raise ValueError(f"schedule {schedule!r} has no warmup (warmup={warmup} would be ignored); "
                         "use 'constant_with_warmup'")
    return get_scheduler(schedule, optimizer, num_warmup_steps=warmup, num_training_steps=steps,
                         scheduler_specific_kwargs=dict(schedule_kwargs or {}))


def _split_loss(out) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(total loss tensor, {name: tensor}) from what loss_fn returned."""
    if isinstance(out, Mapping):
        if "loss" not in out:
            raise ValueError(f"loss_fn returned a dict without the total under 'loss' (keys: {sorted(out)})")
        parts = dict(out)
    else:
        parts = {"loss": out}
    loss = parts["loss"]
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"loss_fn must return a scalar tensor (or a dict with one under 'loss'), got {type(loss)}")
    return loss, parts


def _scalar(v) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def fit(params, loss_fn: Callable[[int], Any], steps: int | None, *, lr: float, optimizer="adamw",
        optimizer_kwargs: Mapping | None = None, schedule: str = "constant", warmup: int = 0,
        schedule_kwargs: Mapping | None = None, clip: float | None = None, max_seconds: float | None = None,
        log_every: int | None = None, eval_fn: Callable[[Any], Mapping] | None = None,
        on_log: Callable[[dict], None] | None = None, model: torch.nn.Module | None = None, progress: bool = True,
        desc: str = "train") -> History:
    """Train `params` (a module, parameters or param groups) for `steps` steps of `loss_fn(step)`; return a History.

    Each step: loss_fn(step) -> zero_grad -> backward -> clip_grad_norm_(clip) ->
    optimizer.step() -> schedule.step(). `optimizer` is "adamw" (default),
    "adam", "sgd" or a torch optimizer class, built with `lr` and
    `optimizer_kwargs` (param-group dicts keep their own settings, e.g.
    weight_decay). `schedule` is a transformers.get_scheduler name (`SCHEDULES`),
    `warmup` its num_warmup_steps, `schedule_kwargs` its
    scheduler_specific_kwargs (e.g. {"min_lr_rate": 0.05}). `clip` is the
    max gradient norm (None: no clipping). `max_seconds` stops the run when the
    wall time is spent; with ``steps=None`` the run is time-boxed and the
    schedule advances with the fraction of `max_seconds` spent (no warmup then).
    With `log_every`, every `log_every` steps and at the last one a row
    {"step", "loss" (mean of the last `log_every` steps), the named parts
    likewise, "wall_s", **eval_fn(module)} is appended to History.log (eval_fn
    gets `model` in eval mode, or None when there is no module)
    and handed to `on_log`. `model` is the module put in train mode for the run
    (eval mode after it, and during eval_fn); it defaults to `params` when that
    is a module (give it when `params` are param groups).
    """
    if steps is None:
        if max_seconds is None:
            raise ValueError("give steps, or steps=None with max_seconds for a time-boxed run")
    elif isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0 (or None with max_seconds), got {steps!r}")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be a max gradient norm > 0 (or None for no clipping), got {clip!r}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds!r}")
    if log_every is not None and (not isinstance(log_every, int) or log_every < 1):
        raise ValueError(f"log_every must be a whole number >= 1 (or None), got {log_every!r}")
    if steps is None and warmup:
        raise ValueError("a time-boxed run (steps=None) takes no warmup: give steps to warm up")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(step), got {type(loss_fn)}")

    module = model if model is not None else params if isinstance(params, torch.nn.Module) else None
    groups = _param_groups(params)
    trained = [p for g in groups for p in g["params"]]
    opt = _optimizer(optimizer, groups, lr, optimizer_kwargs)
    sched = make_schedule(opt, schedule, _CLOCK_TICKS if steps is None else steps, warmup, schedule_kwargs)
    from . import progress as progress_bar

    hist = History()

    def emit(step: int) -> None:
        hist.log.append(_log_row(hist, step, log_every, t0, module, eval_fn))
        if on_log is not None:
            on_log(hist.log[-1])

    if module is not None:
        module.train()
    t0 = time.perf_counter()
    # progress=False disables the bar; otherwise tqdm decides (TQDM_DISABLE=1 turns it off), so no disable=False here
    bar = progress_bar(total=steps, desc=desc, dynamic_ncols=True, enabled=progress)
    try:
        step = 0
        while steps is None or step < steps:
            elapsed = time.perf_counter() - t0
            if max_seconds is not None and elapsed >= max_seconds:
                break
            if steps is None:  # the schedule's clock is the share of the wall-time budget spent
                tick = _CLOCK_TICKS * elapsed / max_seconds
                for g, base, lam in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas, strict=True):
                    g["lr"] = base * lam(tick)
            loss, parts = _split_loss(loss_fn(step))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(trained, clip) if clip is not None else float("nan")
            hist.lrs.append(float(opt.param_groups[0]["lr"]))
            opt.step()
            if steps is not None:
                sched.step()
            hist.records.append({k: _scalar(v) for k, v in parts.items()})
            hist.grad_norms.append(_scalar(norm))
            step += 1
            bar.update(1)
            if progress:
                recent = hist.records[-20:]
                bar.set_postfix(loss=f"{sum(r['loss'] for r in recent) / len(recent):.4g}", refresh=False)
            if log_every is not None and (step % log_every == 0 or step == steps):
                emit(step)
        if log_every is not None and steps is None and step and (not hist.log or hist.log[-1]["step"] != step):
            emit(step)  # a time-boxed run's last row
    finally:
        bar.close()
        hist.wall_s = time.perf_counter() - t0
        if module is not None:
            module.eval()
    return hist


def _log_row(hist: History, step: int, log_every: int, t0: float, module, eval_fn) -> dict:
    """One log row: means over the last `log_every` steps, wall time, and eval_fn's metrics."""
    recent = hist.records[-log_every:]
    row: dict[str, Any] = {"step": step, "loss": sum(r["loss"] for r in recent) / len(recent)}
    for k in recent[-1]:
        if k != "loss":
            row[k] = sum(r[k] for r in recent) / len(recent)
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    if eval_fn is not None:
        if module is not None:
            module.eval()
        try:
            row.update(eval_fn(module))
        finally:
            if module is not None:
                module.train()
    return row


def format_row(row: Mapping, prefix: str = "") -> str:
    """A log row as one line: ``prefix step=120 loss=0.4748 wall_s=579.4``."""
    body = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
    return f"{prefix} {body}" if prefix else body


def schedule_lrs(schedule: str, lr: float, steps: int, warmup: int = 0,
                 schedule_kwargs: Mapping | None = None) -> list[float]:
    """The learning rate at each of `steps` steps of a transformers schedule (what `fit` would use)."""
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = make_schedule(opt, schedule, steps, warmup, schedule_kwargs)
    out = []
    for _ in range(steps):
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return out


def max_relative_difference(a: Iterable[float], b: Iterable[float]) -> float:
    """max |a - b| / |b| over two equal-length LR sequences (b the reference)."""
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"the sequences differ in length: {len(a)} and {len(b)}")
    return max((abs(x - y) / abs(y) for x, y in zip(a, b, strict=True)), default=0.0)
