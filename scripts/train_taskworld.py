"""Train the task world's models and write their checkpoints to data/taskworld/<name>/.

Each model is a small transformers LlamaForCausalLM with a character vocabulary,
trained from scratch on seeded problems of nblib.taskworld.problems (train split only).
The ladder (tiny < mid < large) sees the full operation mix; each specialist
sees mostly one kind of step (add, sub or mul) for HierRouter.

Usage:
    python scripts/train_taskworld.py                 # every model, one after the other
    python scripts/train_taskworld.py tiny spec-mul   # only these
    python scripts/train_taskworld.py --threads 2 --out /tmp/tw large
Each run writes model.safetensors, config.json and train.json (spec, params,
wall time, loss/accuracy log, sha256 of the weights) into its folder.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib import taskworld  # noqa: E402

TRAIN_TASK = taskworld.TaskConfig(min_steps=1, max_steps=6)  # 1-step items too (BIG-bench arithmetic is 1-step)
V2_TASK = taskworld.problems.V2_MIX  # task world v2: easy / medium / hard levels, totals up to 999, 2-8 steps
Arch, Spec = taskworld.models.Arch, taskworld.training.TrainSpec
V2_TINY = Arch(d_model=48, n_layers=3, n_heads=2, d_ff=96, max_len=192)  # also the specialists' shape


SPECS = {
    "tiny": taskworld.training.TrainSpec("tiny", taskworld.models.Arch(d_model=64, n_layers=3, n_heads=2, d_ff=176), steps=750, lr=3e-3,
                        task=TRAIN_TASK),
    "mid": taskworld.training.TrainSpec("mid", taskworld.models.Arch(d_model=128, n_layers=4, n_heads=4, d_ff=352), steps=700, lr=2e-3,
                       task=TRAIN_TASK),
    "large": taskworld.training.TrainSpec("large", taskworld.models.Arch(d_model=192, n_layers=5, n_heads=6, d_ff=512), steps=1200, lr=2e-3,
                         task=TRAIN_TASK),
    # specialists: the full mix of problems, loss mostly on one kind of step
    **{name: taskworld.training.TrainSpec(name, taskworld.models.Arch(d_model=96, n_layers=2, n_heads=2, d_ff=256), steps=800, lr=3e-3,
                         task=TRAIN_TASK, focus=op, focus_keep=0.1)
       for op, name in taskworld.models.SPECIALISTS_V1.items() if op != "-"},
    # subtraction with borrows did not converge with 2 layers in 800 steps (16.7 % of its own steps right)
    "spec-sub": taskworld.training.TrainSpec("spec-sub", taskworld.models.Arch(d_model=96, n_layers=3, n_heads=2, d_ff=256), steps=1000, lr=3e-3,
                            task=TRAIN_TASK, focus="-", focus_keep=0.1),
    # task world v2 (issue 21): a ladder with ~4-5x FLOPs per rung and >= 25x end to end, trained on the
    # v2 mix; specialists at tiny's shape, loss mostly on one kind of step
    "v2-tiny": Spec("v2-tiny", V2_TINY, steps=3000, lr=3e-3, task=V2_TASK, bucket=4, select_max_val_acc=0.58),
    "v2-mid": Spec("v2-mid", Arch(d_model=128, n_layers=3, n_heads=4, d_ff=256, max_len=192), steps=1800, lr=2e-3,
                   task=V2_TASK, bucket=4, select_max_val_acc=0.84),
    # the large rung continues the first ladder's large (same shape) for 500 steps on the first v2 weighting
    # (V2_FIRST_MIX: two-digit easy steps, more hard problems); three-digit totals and 7-8 steps were new to it
    "v2-large": Spec("v2-large", Arch(d_model=192, n_layers=5, n_heads=6, d_ff=512, max_len=192), steps=500,
                     lr=1e-3, warmup=20, task=taskworld.problems.V2_FIRST_MIX, bucket=4, select_max_val_acc=0.955,
                     init_from="large"),
    # specialists: v2-tiny fine-tuned with the loss only on one kind of step (and the answer line): the same
    # cost per token, its capacity moved to that kind (the other kinds drift)
    **{f"v2-spec-{kind}": Spec(f"v2-spec-{kind}", V2_TINY, steps=800, lr=1e-3, warmup=20, task=V2_TASK, bucket=4,
                               focus=op, focus_keep=0.0, init_from="v2-tiny")
       for op, kind in (("-", "sub"), ("*", "mul"))},   # an add specialist gained 5 points only: not shipped
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"models to train (default: all of {list(SPECS)})")
    ap.add_argument("--out", type=Path, default=taskworld.models.MODELS_DIR)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-n", type=int, default=300, help="held-out problems scored at each log line")
    args = ap.parse_args(argv)
    names = args.names or list(SPECS)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {list(SPECS)}")
    torch.set_num_threads(args.threads)
    for name in names:
        spec = SPECS[name]
        held = taskworld.problems.problems("val", args.eval_n, seed=0, cfg=spec.task)
        snaps: dict[int, dict] = {}

        def eval_fn(model, held=held, snaps=snaps):
            row = {"val_acc": taskworld.accuracy(model, held)}
            if spec.select_max_val_acc is not None:  # keep a copy: the committed checkpoint may be an earlier one
                snaps[len(snaps)] = {"state": {k: v.detach().clone() for k, v in model.state_dict().items()}, **row}
            return row

        t0 = time.time()
        model, record = taskworld.training.train(spec, log_every=max(100, spec.steps // 12), eval_fn=eval_fn)
        if spec.select_max_val_acc is not None:
            record = taskworld.training.select_snapshot(model, record, snaps, spec.select_max_val_acc)
        folder = args.out / name
        record["sha256"] = None
        taskworld.models.save_model(model, folder, record)
        sha = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        record["sha256"] = sha
        record["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        taskworld.models.save_model(model, folder, record)
        print(f"[{name}] saved {folder} ({record['params']:,} params, {time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
