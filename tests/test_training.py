"""nblib.training.fit: the one training loop (zero_grad/backward/clip/step on transformers' LR schedules)."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers

from nblib import training
from nblib.training import fit

ROOT = Path(__file__).resolve().parents[1]


def _constant_loss(w):
    """A loss whose value does not matter: only the schedule is under test."""
    return lambda step: (w * 0.0).sum() + (w ** 2).sum()


def test_fit_lowers_a_loss_on_a_tiny_regression():
    torch.manual_seed(0)
    x = torch.randn(256, 3)
    y = x @ torch.tensor([1.5, -2.0, 0.5]) + 0.3
    model = torch.nn.Linear(3, 1)

    def loss_fn(step):
        return torch.nn.functional.mse_loss(model(x)[:, 0], y)

    hist = fit(model, loss_fn, 150, lr=0.05, schedule="cosine_warmup_with_min_lr", warmup=10,
               schedule_kwargs={"min_lr_rate": 0.1}, clip=1.0, progress=False)
    assert hist.steps == 150 and len(hist.lrs) == len(hist.grad_norms) == 150
    assert hist.losses[-1] < 0.01 * hist.losses[0]
    assert not model.training  # left in eval mode


# name, warmup, kwargs, the transformers function that builds the same schedule
SCHEDULE_CASES = [
    ("cosine_warmup_with_min_lr", 10, {"min_lr_rate": 0.05},
     transformers.optimization.get_cosine_with_min_lr_schedule_with_warmup_lr_rate),
    ("cosine_with_min_lr", 10, {"min_lr_rate": 0.1}, transformers.get_cosine_with_min_lr_schedule_with_warmup),
    ("cosine", 7, {}, transformers.get_cosine_schedule_with_warmup),
    ("linear", 5, {}, transformers.get_linear_schedule_with_warmup),
    ("polynomial", 0, {"lr_end": 1e-4, "power": 1.0}, transformers.get_polynomial_decay_schedule_with_warmup),
    ("constant_with_warmup", 4, {}, transformers.get_constant_schedule_with_warmup),
    ("constant", 0, {}, transformers.get_constant_schedule),
]


@pytest.mark.parametrize("name,warmup,kwargs,build", SCHEDULE_CASES, ids=[c[0] for c in SCHEDULE_CASES])
def test_lr_follows_the_transformers_schedule_exactly(name, warmup, kwargs, build):
    steps, lr = 40, 3e-3
    w = torch.nn.Parameter(torch.ones(2))
    hist = fit([w], _constant_loss(w), steps, lr=lr, schedule=name, warmup=warmup, schedule_kwargs=kwargs,
               progress=False)
    # the reference: transformers' own scheduler on its own optimizer, stepped by hand
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))], lr=lr)
    sched = build(opt, **({"num_warmup_steps": warmup} if name != "constant" else {}),
                  **({"num_training_steps": steps} if "constant" not in name else {}), **kwargs)
    ref = []
    for _ in range(steps):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert hist.lrs == ref
    assert training.schedule_lrs(name, lr, steps, warmup, kwargs) == ref


def test_warmup_and_min_lr_endpoints():
    lr, steps, warmup = 2e-3, 50, 10
    w = torch.nn.Parameter(torch.ones(1))
    # cosine_warmup_with_min_lr: warmup (step+1)/warmup, so full lr at the warmup's last step; the floor at the end
    h = fit([w], _constant_loss(w), steps, lr=lr, schedule="cosine_warmup_with_min_lr", warmup=warmup,
            schedule_kwargs={"min_lr_rate": 0.05}, progress=False)
    assert h.lrs[0] == pytest.approx(lr / warmup, rel=1e-12)
    assert h.lrs[warmup - 1] == pytest.approx(lr, rel=1e-12)
    assert h.lrs[-1] == pytest.approx(0.05 * lr, rel=1e-12)
    assert min(h.lrs[warmup:]) == pytest.approx(0.05 * lr, rel=1e-12)
    assert all(a >= b for a, b in zip(h.lrs[warmup - 1:], h.lrs[warmup:], strict=False))  # monotone after warmup
    # cosine_with_min_lr: warmup step/warmup (0 at step 0), full lr at step `warmup`, above the floor to the end
    h = fit([w], _constant_loss(w), steps, lr=lr, schedule="cosine_with_min_lr", warmup=warmup,
            schedule_kwargs={"min_lr_rate": 0.1}, progress=False)
    assert h.lrs[0] == 0.0 and h.lrs[warmup] == pytest.approx(lr, rel=1e-12)
    floor = 0.1 * lr
    last = floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * (steps - 1 - warmup) / (steps - warmup)))
    assert h.lrs[-1] == pytest.approx(last, rel=1e-12) and h.lrs[-1] > floor


def test_param_groups_keep_their_settings_and_share_the_schedule():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    seen = []

    def loss_fn(step):
        seen.append([g["lr"] for g in opt_groups()])
        return (a ** 2).sum() + (b ** 2).sum()

    groups = [{"params": [a], "weight_decay": 0.5}, {"params": [b], "weight_decay": 0.0}]
    captured = {}

    class Spy(torch.optim.AdamW):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            captured["opt"] = self

    def opt_groups():
        return captured["opt"].param_groups

    fit(groups, loss_fn, 6, lr=1e-2, optimizer=Spy, schedule="linear", warmup=2, progress=False)
    opt = captured["opt"]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
    assert all(x == y for x, y in seen)  # both groups follow one schedule


def _sgd_step(grad_scale: float, clip):
    w = torch.nn.Parameter(torch.zeros(2))
    c = torch.tensor([3.0, 4.0]) * grad_scale  # gradient of (w * c).sum() is c, norm 5 * grad_scale
    hist = fit([w], lambda step: (w * c).sum(), 1, lr=1.0, optimizer="sgd", clip=clip, progress=False)
    return w.detach(), c, hist


def test_clip_scales_gradients_above_the_norm():
    w, c, hist = _sgd_step(10.0, clip=1.0)  # norm 50 -> clipped to 1: the SGD step is -c / 50
    assert hist.grad_norms == [pytest.approx(50.0)]
    torch.testing.assert_close(w, -c / 50.0)
    assert float(w.norm()) == pytest.approx(1.0, rel=1e-5)
    w, c, _ = _sgd_step(0.1, clip=1.0)  # norm 0.5, under the limit: untouched
    torch.testing.assert_close(w, -c)
    w, c, hist = _sgd_step(10.0, clip=None)  # no clipping asked: the full gradient
    torch.testing.assert_close(w, -c)
    assert math.isnan(hist.grad_norms[0])


def test_dict_losses_are_logged_per_step_and_averaged():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    rows = []

    def loss_fn(step):
        task, kd = (w * 0 + step).sum(), (w * 0 + 10 * step).sum()
        return {"task": task, "kd": kd, "loss": task + kd + (w ** 2).sum()}

    hist = fit([w], loss_fn, 5, lr=1e-3, log_every=2, on_log=rows.append, progress=False)
    assert [list(r) for r in hist.records] == [["task", "kd", "loss"]] * 5
    assert [r["task"] for r in hist.records] == [0, 1, 2, 3, 4]
    assert [r["step"] for r in hist.log] == [2, 4, 5] and rows == hist.log
    assert hist.log[0]["task"] == 0.5 and hist.log[0]["kd"] == 5.0 and hist.log[1]["task"] == 2.5
    assert hist.log[2]["task"] == 3.5  # the last row averages the last log_every steps
    assert all(set(r) == {"step", "loss", "task", "kd", "wall_s"} for r in hist.log)
    assert all(r["wall_s"] >= 0 for r in hist.log)


def test_eval_fn_runs_in_eval_mode_and_is_logged():
    model = torch.nn.Linear(2, 1)
    modes = []

    def eval_fn(m):
        assert m is model
        modes.append(m.training)
        return {"val": 1.0}

    def loss_fn(step):
        assert model.training
        return model(torch.ones(1, 2)).sum()

    hist = fit(model, loss_fn, 4, lr=1e-3, log_every=2, eval_fn=eval_fn, progress=False)
    assert modes == [False, False] and [r["val"] for r in hist.log] == [1.0, 1.0]


def test_time_boxed_run_follows_the_schedule_on_the_wall_clock():
    w = torch.nn.Parameter(torch.ones(1))
    lr = 1e-2
    hist = fit([w], _constant_loss(w), None, lr=lr, max_seconds=0.3, schedule="polynomial",
               schedule_kwargs={"lr_end": 0.1 * lr, "power": 1.0}, log_every=1000, progress=False)
    assert hist.steps > 3 and 0.3 <= hist.wall_s < 5
    assert hist.lrs[0] == pytest.approx(lr, rel=0.05)  # the clock starts just before the first step
    assert all(a >= b for a, b in zip(hist.lrs, hist.lrs[1:], strict=False)) and hist.lrs[-1] >= 0.1 * lr
    assert hist.lrs[-1] < 0.5 * lr  # most of the way down by the end of the budget
    assert hist.log[-1]["step"] == hist.steps  # a time-boxed run logs its last step


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": -1}, "steps must be a whole number >= 0"),
    ({"steps": 2.5}, "steps must be a whole number >= 0"),
    ({"steps": None}, "max_seconds"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"lr": -1e-3}, "lr must be a finite number > 0"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ({"schedule": "cosine_annealing"}, "unknown schedule 'cosine_annealing'"),
    ({"schedule": "reduce_lr_on_plateau"}, "unknown schedule"),
    ({"schedule": "constant", "warmup": 5}, "has no warmup"),
    ({"warmup": -1, "schedule": "linear"}, "warmup must be"),
    ({"optimizer": "lion"}, "unknown optimizer 'lion'"),
    ({"clip": 0.0}, "clip must be"),
    ({"log_every": 0}, "log_every must be"),
    ({"steps": None, "max_seconds": 1.0, "warmup": 3, "schedule": "linear"}, "takes no warmup"),
])
def test_bad_input_is_a_clear_error(kwargs, match):
    w = torch.nn.Parameter(torch.ones(1))
    args = {"steps": 3, "lr": 1e-3, **kwargs}
    with pytest.raises(ValueError, match=match):
        fit([w], _constant_loss(w), args.pop("steps"), progress=False, **args)


def test_bad_losses_and_params_are_clear_errors():
    w = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="without the total under 'loss'"):
        fit([w], lambda s: {"task": w.sum()}, 1, lr=1e-3, progress=False)
    with pytest.raises(TypeError, match="scalar tensor"):
        fit([w], lambda s: w * 2, 1, lr=1e-3, progress=False)
    with pytest.raises(ValueError, match="no parameters"):
        fit(torch.nn.Linear(2, 2).requires_grad_(False), lambda s: w.sum(), 1, lr=1e-3, progress=False)
    with pytest.raises(TypeError, match="not an instance"):
        fit([w], lambda s: w.sum(), 1, lr=1e-3, optimizer=torch.optim.SGD([w], lr=1.0), progress=False)


def test_zero_steps_is_an_empty_history():
    w = torch.nn.Parameter(torch.ones(1))
    hist = fit([w], _constant_loss(w), 0, lr=1e-3, log_every=5, progress=False)
    assert hist.steps == 0 and hist.log == [] and hist.losses == []
    assert float(w.detach()) == 1.0


def test_progress_false_prints_nothing(capfd):
    w = torch.nn.Parameter(torch.ones(1))
    fit([w], _constant_loss(w), 20, lr=1e-3, log_every=5, progress=False, desc="quiet-run")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_bar_is_shown_unless_asked_not_to():
    """In a fresh process without TQDM_DISABLE: progress=True draws the bar, progress=False draws nothing."""
    code = ("import torch; from nblib.training import fit\n"
            "w = torch.nn.Parameter(torch.ones(1))\n"
            "fit([w], lambda s: (w ** 2).sum(), 3, lr=1e-3, progress=True, desc='BAR-ON')\n"
            "fit([w], lambda s: (w ** 2).sum(), 3, lr=1e-3, progress=False, desc='BAR-OFF')\n")
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert "BAR-ON" in res.stderr and "3/3" in res.stderr
    assert "BAR-OFF" not in res.stderr + res.stdout
    env["TQDM_DISABLE"] = "1"  # and tqdm's own switch still turns the bar off
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert "BAR-ON" not in res.stderr


def test_the_foundation_imports_no_technique_package():
    text = (ROOT / "nblib" / "training.py").read_text()
    for pkg in ("taskworld", "koala", "cast", "measuring"):
        assert f"from .{pkg}" not in text and f"nblib.{pkg}" not in text and f"from . import {pkg}" not in text
