"""Train and commit HierRouter's PPO policies (one per cost weight lambda), then evaluate them held out.

    python scripts/hierrouter_train.py [--lams 0.05 0.15 0.4 1 3] [--timesteps 120000] [--train-n 500]
                                       [--test-n 400] [--out data/hierrouter] [--no-ablation]

Builds (or loads from the user cache) the step tables of the training and test splits (3-step problems,
pool spec-add, spec-sub, spec-mul, tiny, large; router view: tiny's hidden states), trains one PPO policy
per lambda with stable-baselines3 on table look-ups, and writes data/hierrouter/policy_lam<lam>.safetensors
+ .json (state_dict + config, training command, wall time, learning curve), the hand-feature ablation
policy_lam<lam>_hand.*, and results.json (every method on the test split). One torch thread.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nblib import hierrouter as H  # noqa: E402


def main() -> None:
    """Train every lambda's policy, save it, evaluate all methods, write results.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lams", type=float, nargs="+", default=list(H.bench.DEFAULT_LAMS))
    ap.add_argument("--timesteps", type=int, default=120_000)
    ap.add_argument("--train-n", type=int, default=500)
    ap.add_argument("--test-n", type=int, default=400)
    ap.add_argument("--horizon", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(H.bench.DATA_DIR))
    ap.add_argument("--ablation-lam", type=float, default=0.4)
    ap.add_argument("--no-ablation", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    command = "python scripts/hierrouter_train.py " + " ".join(sys.argv[1:])
    t0 = time.perf_counter()
    train, ctr = H.step_table("train", a.train_n, a.horizon, verbose=True)
    test, cte = H.step_table("test", a.test_n, a.horizon, verbose=True)
    unit = H.reference_cost(ctr, train, a.horizon)
    print(f"tables ready in {time.perf_counter() - t0:.0f} s: {len(ctr.steps)} train and {len(cte.steps)} test "
          f"(context, model) outputs; cost unit {unit / 1e6:.1f} MFLOPs (large-only episode)")
    routers = {}
    for lam in a.lams:
        r = H.train(train, ctr, lam, a.horizon, a.timesteps, a.seed, cost_unit=unit)
        r.config["command"] = command
        r.save(a.out, H.bench.policy_file(lam, a.out).stem)
        routers[lam] = H.Router.load(H.bench.policy_file(lam, a.out))  # evaluate what was committed
        print(f"lam {lam:g}: trained in {r.config['train_wall_s']:.0f} s (load {os.getloadavg()}), "
              f"{r.config['model_calls_during_training']} model calls during training", flush=True)
    ablations = {}
    if not a.no_ablation:
        hand_tr = H.StepCache(ctr.pool, H.KindFeatures(), ctr.steps)
        hand_te = H.StepCache(cte.pool, H.KindFeatures(), cte.steps)
        r = H.train(train, hand_tr, a.ablation_lam, a.horizon, a.timesteps, a.seed, cost_unit=unit)
        r.config["command"] = command
        r.config["ablation"] = "hand features: a one-hot of the next step's kind instead of hidden states"
        stem = H.bench.policy_file(a.ablation_lam, a.out, "_hand").stem
        r.save(a.out, stem)
        ablations[f"ablation: hand kind features (lam {a.ablation_lam:g})"] = (
            H.Router.load(Path(a.out) / f"{stem}.safetensors"), hand_te)
        print(f"hand-feature ablation: trained in {r.config['train_wall_s']:.0f} s", flush=True)
    rows, evals = H.bench.compare(routers, train, ctr, test, cte, a.horizon, unit, ablations)
    df = H.bench.frame(rows)
    with __import__("pandas").option_context("display.width", 180, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    extra = {"command": command, "train_problems": a.train_n, "test_problems": a.test_n, "horizon": a.horizon,
             "cost_unit_flops": unit, "total_wall_s": round(time.perf_counter() - t0, 1),
             "loadavg": [round(x, 2) for x in os.getloadavg()]}
    path = H.bench.save_results(rows, evals, Path(a.out) / "results.json", extra, ctr.names, a.horizon)
    print(__import__("json").dumps(H.bench.summary(rows)))
    print(f"wrote {path}; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
