"""What the task models are worth: answer and step accuracy, step-confidence AUROC, FLOPs per token."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .. import checks
from ..cost import measure_flops, transformer_flops
from . import problems as T
from .generation import generate, solve
from .models import BOS, NEWLINE, load_model, prompt_of, shape_of
from .traces import ProblemTrace

def accuracy(model, problems: Sequence[T.Problem], batch_size: int = 256) -> float:
    """Final-answer accuracy of greedy solutions."""
    gens = solve(model, problems, batch_size)
    return float(np.mean([T.check_answer(p, g.text) for p, g in zip(problems, gens)]))


def step_accuracy(model, problems: Sequence[T.Problem], batch_size: int = 512) -> dict[str, float]:
    """Per kind of step: the share of steps the model writes exactly right given the gold steps before it."""
    ctx, gold, kinds = [], [], []
    for p in problems:
        lines = p.step_lines
        for i in range(p.n_steps):
            ctx.append(prompt_of(p) + "".join(line + "\n" for line in lines[:i]))
            gold.append(lines[i])
            kinds.append(p.kinds[i])
    gens = generate(model, ctx, max_new_tokens=16, stop_at_newline=True, batch_size=batch_size)  # a step line <= 13 chars
    ok = np.array([g.text.strip() == s for g, s in zip(gens, gold)])
    kinds = np.array(kinds)
    return {k: float(ok[kinds == k].mean()) for k in T.OPS if (kinds == k).any()}



def step_auroc(traces: Sequence[ProblemTrace], include_answer: bool = False) -> float:
    """AUROC of step confidence for valid vs invalid steps (answer lines excluded by default)."""
    from sklearn.metrics import roc_auc_score

    ys, cs = [], []
    for t in traces:
        for s in t.steps:
            if s.kind == "#" and not include_answer:
                continue
            ys.append(int(s.valid))
            cs.append(s.confidence)
    if len(set(ys)) < 2:
        raise ValueError("AUROC needs both correct and wrong steps; all steps had the same verdict")
    return float(roc_auc_score(ys, cs))


def calibration_table(steps, n_bins: int = 10, score: str = "confidence", outcome: str = "valid"):
    """Bin steps (a trace_frame) by `score` into n_bins equal-width bins on [0, 1]: mean score, share right, count."""
    import pandas as pd

    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if len(steps) == 0:
        raise ValueError("calibration needs at least one step")
    bins = pd.cut(steps[score], np.linspace(0, 1, n_bins + 1), include_lowest=True)
    return steps.groupby(bins, observed=True).agg(confidence=(score, "mean"), right=(outcome, "mean"),
                                                  steps=(outcome, "size"))


def flops_per_token(model, past: int = 32) -> tuple[int, int]:
    """(analytic, measured) FLOPs of generating one token after `past` cached tokens (batch 1)."""
    from transformers import DynamicCache

    ids = torch.full((1, past), NEWLINE, dtype=torch.long)
    ids[0, 0] = BOS
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
    nxt = torch.full((1, 1), NEWLINE, dtype=torch.long)
    _, measured = measure_flops(lambda: model(input_ids=nxt, cache=cache, use_cache=True, logits_to_keep=1))
    analytic = transformer_flops(shape_of(model), 1, 1, past=past, logits_positions=1)
    return analytic, measured


def accuracy_by_steps(traces: Sequence[ProblemTrace]) -> dict[int, float]:
    """Final-answer accuracy grouped by the problem's number of steps."""
    by: dict[int, list[bool]] = {}
    for t in traces:
        by.setdefault(t.n_steps, []).append(t.correct)
    return {k: float(np.mean(v)) for k, v in sorted(by.items())}


def external_accuracy(model, items: Sequence[T.ExternalItem], batch_size: int = 256) -> dict[str, float]:
    """Final-answer accuracy on converted external items, per source task and 'all'."""
    gens = solve(model, [it.problem for it in items], batch_size)
    ok = np.array([T.check_answer(it.problem, g.text) for it, g in zip(items, gens)])
    tasks = np.array([it.task for it in items])
    out = {t: float(ok[tasks == t].mean()) for t in dict.fromkeys(tasks)}
    out["all"] = float(ok.mean())
    return out


def specialist_matrix(names: Sequence[str], problems: Sequence[T.Problem]):
    """Step accuracy (gold context) of each named model on each kind of step: DataFrame models x kinds."""
    import pandas as pd

    rows = {n: step_accuracy(load_model(n), problems) for n in names}
    return pd.DataFrame(rows).T.rename(columns=T.KIND_NAMES)


def bootstrap_interval(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (e.g. per-problem 0/1 correctness)."""
    n_boot = checks.whole("n_boot", n_boot, low=1, high=checks.MAX_RESAMPLES)
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("a bootstrap interval needs at least one value")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (n_boot, x.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def accuracy_by_level(traces: Sequence[ProblemTrace], mix: "T.TaskMix") -> dict[str, float]:
    """Final-answer accuracy per difficulty level of the mix (levels in the mix's order, absent ones left out)."""
    by: dict[str, list[bool]] = {}
    for t in traces:
        by.setdefault(mix.level_of(t.n_steps), []).append(t.correct)
    return {name: float(np.mean(by[name])) for name in mix.names if name in by}


FINE_KINDS = ("add 1-digit", "add 2-digit", "sub 1-digit", "sub 2-digit", "mul")


def fine_kind(op: str, operand: int) -> str:
    """A finer kind of step: the operation and, for + and -, whether its operand has one digit or more."""
    if op == "*":
        return "mul"
    return f"{T.KIND_NAMES[op]} {'1-digit' if operand < 10 else '2-digit'}"


def step_validity_by_kind(traces: Sequence[ProblemTrace], fine: bool = False) -> dict[str, float]:
    """Per kind of step (add, sub, mul), the share of the model's own written steps of that kind that are valid.

    A step's kind is the problem's operation at that position, so a garbled line still counts against it.
    With `fine`, + and - are split by the operand's digit count (`FINE_KINDS`).
    """
    ok: dict[str, list[bool]] = {}
    for t in traces:
        ops = T.parse_problem(t.problem).ops
        for s in t.steps:
            if s.kind == "#" or s.index >= len(ops):
                continue
            op, x = ops[s.index]
            ok.setdefault(fine_kind(op, x) if fine else T.KIND_NAMES[op], []).append(s.valid)
    order = FINE_KINDS if fine else tuple(T.KIND_NAMES[k] for k in T.OPS)
    return {k: float(np.mean(ok[k])) for k in order if k in ok}


def ladder_report(names: Sequence[str], n: int = 400, seed: int = 0, n_specialist: int = 200,
                  verbose: bool = False) -> dict[str, dict]:
    """Per model: params, FLOPs per token, accuracy (with a bootstrap interval), by level, step validity by kind.

    Every model is run (cached traces) on the same `n` held-out test problems of its own task (the v2 mix for
    v2 models); `step_accuracy_by_kind` (gold context, `n_specialist` problems) is the specialist matrix's row.
    """
    from .models import default_task, model_info
    from .traces import trace

    out = {}
    for name in names:
        cfg = default_task(name)
        tr = trace(name, "test", n=n, seed=seed, cfg=cfg, verbose=verbose)
        model = load_model(name)
        ok = [t.correct for t in tr]
        analytic, _ = flops_per_token(model, past=32)
        row = {"params": int(model_info(name)["params"]), "flops_per_token": int(analytic),
               "accuracy": float(np.mean(ok)), "accuracy_interval": bootstrap_interval(ok),
               "mflops_per_problem": float(np.mean([t.flops for t in tr]) / 1e6),
               "step_validity_by_kind": step_validity_by_kind(tr),
               "step_validity_by_fine_kind": step_validity_by_kind(tr, fine=True)}
        if isinstance(cfg, T.TaskMix):
            row["accuracy_by_level"] = accuracy_by_level(tr, cfg)
            row["accuracy_easiest"] = row["accuracy_by_level"][cfg.names[0]]
        held = T.problems("test", n_specialist, seed=seed, cfg=cfg)
        row["step_accuracy_by_kind"] = {T.KIND_NAMES[k]: v for k, v in step_accuracy(model, held).items()}
        out[name] = row
    return out
