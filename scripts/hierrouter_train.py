"""Train and commit HierRouter's PPO policies (lambdas x seeds), then evaluate every method held out.

    python scripts/hierrouter_train.py [--lams 0 0.01 0.05 0.15 0.5] [--seeds 0 1 2] [--timesteps 40000]
                                       [--train-n 3000] [--test-n 400] [--out data/hierrouter] [--no-ablation]

Builds (or loads from the user cache) the step tables of the training and test splits of the task world v2
mix (2 to 8 steps; pool v2-tiny, v2-spec-sub, v2-spec-mul, v2-mid, v2-large; router view: v2-tiny's hidden
states), fits the PCA projection on the training contexts, trains one PPO policy per (lambda, seed) with
stable-baselines3 + VecNormalize on table look-ups, and writes data/hierrouter/policy_lam<lam>_s<seed>.*
(safetensors: state_dict, projection, normalisation; JSON: config, command, wall time, load, learning curve),
the hand-feature ablation policy_lam<lam>_s0_hand.*, and results.json (every method on the test split).
One torch thread.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nblib import hierrouter as H  # noqa: E402

REG_N = 40  # held-out problems whose routes the tests replay


def main() -> None:
    """Train every (lambda, seed) policy, save it, evaluate all methods, write results.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lams", type=float, nargs="+", default=list(H.bench.DEFAULT_LAMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(H.bench.SEEDS))
    ap.add_argument("--timesteps", type=int, default=40_000)
    ap.add_argument("--train-n", type=int, default=3000)
    ap.add_argument("--test-n", type=int, default=400)
    ap.add_argument("--out", default=str(H.bench.DATA_DIR))
    ap.add_argument("--ablation-lam", type=float, default=0.05)
    ap.add_argument("--no-ablation", action="store_true")
    ap.add_argument("--eval-only", action="store_true", help="evaluate the policies already in --out")
    a = ap.parse_args()
    torch.set_num_threads(1)
    command = "python scripts/hierrouter_train.py " + " ".join(sys.argv[1:])
    t0 = time.perf_counter()
    train, ctr = H.step_table("train", a.train_n, verbose=True)
    test, cte = H.step_table("test", a.test_n, verbose=True)
    Atr, Ate = H.arrays(ctr, train), H.arrays(cte, test)
    unit = H.reference_cost(ctr, train)
    print(f"tables ready in {time.perf_counter() - t0:.0f} s: {len(ctr.steps)} train and {len(cte.steps)} test "
          f"(context, model) outputs; cost unit {unit / 1e6:.1f} MFLOPs (large-only episode)", flush=True)
    feats = H.Features.fit(Atr.view[np.arange(Atr.horizon) < Atr.n_steps[:, None]])
    if not a.eval_only:
        for lam in a.lams:
            for seed in a.seeds:
                r = H.train(train, ctr, lam, a.timesteps, seed, cost_unit=unit, features=feats)
                r.config["command"] = command
                r.save(a.out, H.bench.policy_file(lam, seed, a.out).stem)
                print(f"lam {lam:g} seed {seed}: trained in {r.config['train_wall_s']:.0f} s (load "
                      f"{os.getloadavg()}), {r.config['model_calls_during_training']} model calls during training",
                      flush=True)
        if not a.no_ablation:
            hand_tr = ctr.with_encoder(H.KindFeatures())
            r = H.train(train, hand_tr, a.ablation_lam, a.timesteps, 0, cost_unit=unit,
                        features=H.Features(raw_dim=H.KindFeatures.dim))
            r.config["command"] = command
            r.config["ablation"] = "hand features: a one-hot of the next step's kind instead of hidden states"
            r.save(a.out, H.bench.policy_file(a.ablation_lam, 0, a.out, "_hand").stem)
            print(f"hand-feature ablation: trained in {r.config['train_wall_s']:.0f} s", flush=True)
    routers = H.bench.load_routers(a.lams, a.seeds, a.out)  # evaluate what was committed
    ablations = {}
    if not a.no_ablation:
        hand = H.Router.load(H.bench.policy_file(a.ablation_lam, 0, a.out, "_hand"))
        ablations[f"ablation: hand kind features (lam {a.ablation_lam:g})"] = (hand, H.arrays(cte.with_encoder(
            H.KindFeatures()), test))
    rows, walks = H.bench.compare(routers, Atr, Ate, unit, ablations)
    df = H.bench.frame(rows)
    with __import__("pandas").option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    extra = {"command": command, "train_problems": a.train_n, "test_problems": a.test_n, "horizon": Atr.horizon,
             "cost_unit_flops": unit, "total_wall_s": round(time.perf_counter() - t0, 1),
             "loadavg": [round(x, 2) for x in os.getloadavg()], "lams": a.lams, "seeds": a.seeds,
             "cpu": H.bench.C.cpu_model()}
    # regression values for tests/hierrouter: each lambda's seed-0 policy on the first REG_N held-out problems
    reg_test, reg_cache = H.step_table("test", REG_N)
    A_reg = H.arrays(reg_cache, reg_test)
    extra["regression"] = {"test_n": REG_N, "policies": {}}
    for lam in a.lams:
        w = H.agent.run(routers[lam][0], A_reg, unit)
        extra["regression"]["policies"][H.bench.policy_file(lam, a.seeds[0], a.out).stem] = {
            "actions": w.actions.tolist(), "accuracy": float(w.quality.mean()), "flops": float(w.flops.mean())}
    path = H.bench.save_results(rows, Path(a.out) / "results.json", extra)
    print(__import__("json").dumps({k: v for k, v in H.bench.summary(rows).items() if k != "baselines"}))
    print(f"wrote {path}; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
