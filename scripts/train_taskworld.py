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
       for op, name in taskworld.SPECIALISTS.items() if op != "-"},
    # subtraction with borrows did not converge with 2 layers in 800 steps (16.7 % of its own steps right)
    "spec-sub": taskworld.training.TrainSpec("spec-sub", taskworld.models.Arch(d_model=96, n_layers=3, n_heads=2, d_ff=256), steps=1000, lr=3e-3,
                            task=TRAIN_TASK, focus="-", focus_keep=0.1),
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
    held = taskworld.problems.problems("val", args.eval_n, seed=0)

    def eval_fn(model):
        return {"val_acc": taskworld.accuracy(model, held)}

    for name in names:
        spec = SPECS[name]
        t0 = time.time()
        model, record = taskworld.training.train(spec, log_every=max(100, spec.steps // 10), eval_fn=eval_fn)
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
