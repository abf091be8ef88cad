"""The sparsity-weight sweep behind data/d2dmoe/weight_sweep_minilm.json (issue 28, part 2).

For each L1 weight (0 = the ReLU swap fine-tuned without any sparsity penalty), the same recipe as the
shipped MiniLM model (`finetune.finetune_minilm`, the same number of steps for every weight so only the
weight differs), then 24 experts of 64 by balanced k-means, routers trained as shipped, and the test
reviews evaluated dense, under dynamic-k at each tau and under static top-k at each k. Written per weight:
zero fraction of the FFN activations, dense accuracy, FFN FLOPs saved within 1 point of THAT model's dense
accuracy and of the shipped model's, dynamic-k minus top-k at equal FLOPs (points), wall times, load.
Nothing in data/ except the JSON is touched (the fine-tuned models stay in memory).

Usage: python scripts/d2dmoe_weight_sweep.py [--weights 0 1e-3 3e-3] [--steps 150] [--items 600]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib import d2dmoe as D  # noqa: E402
from nblib.d2dmoe import bench, fair  # noqa: E402
from nblib.d2dmoe import finetune as F  # noqa: E402

OUT = D.data.DATA_DIR / "weight_sweep_minilm.json"


def minilm_forward(model, batch):
    """Run the classifier on one tokenised batch."""
    return model(batch["input_ids"], batch["attention_mask"])


def sweep_one(weight: float, steps: int, experts: int, items, tok, train, taus, ks, router_steps: int) -> dict:
    """Fine-tune at one weight, convert, train routers, evaluate every rule: one JSON-ready record."""
    t0 = time.perf_counter()
    base = D.models.raw_base("minilm")
    model, _, hist = F.finetune_minilm(base, tok, steps=steps, max_seconds=1e9, weight=weight, progress=False)
    model.eval()
    ft_s = time.perf_counter() - t0
    batches = [D.data.encode(tok, train[i:i + 50], 64) for i in range(0, 200, 50)]
    stats = D.activation_stats(model, batches, minilm_forward, sample=4000)
    stats.pop("sample")
    t1 = time.perf_counter()
    layers = D.convert_model(model, experts)
    enc = (D.data.encode(tok, train[i:i + 50], 64) for i in range(0, len(train), 50))
    inputs = F.collect_ffn_inputs(model, layers, enc, minilm_forward, max_tokens=30000)
    rh = F.train_routers(layers, inputs, steps=router_steps, max_seconds=100, progress=False)
    router_s = time.perf_counter() - t1
    t2 = time.perf_counter()

    def ev(rule, value=None):
        return fair._pack(D.evaluate.evaluate_classifier(model, layers, tok, items, rule, value, max_len=64))

    dense = ev("dense")
    dynk = [ev("dynk", t) for t in taus]
    topk = [ev("topk", k) for k in ks]
    eval_s = time.perf_counter() - t2
    saved, best = bench.saved_at(dynk, dense["accuracy"])
    saved_k, best_k = bench.saved_at(topk, dense["accuracy"])
    return {"weight": weight, "steps": hist.steps, "finetune_s": round(ft_s, 1), "final_task_loss": hist.log[-1]["task"],
            "zero_fraction": stats["zero_fraction"], "nonpositive_fraction": stats["nonpositive_fraction"],
            "router_s": round(router_s, 1), "router_final_mse": rh.log[-1]["loss"], "eval_s": round(eval_s, 1),
            "n_experts": experts, "n_items": len(items), "dense": dense, "dynk": dynk, "topk": topk,
            "saved_dynk_1pt": saved, "tau_1pt": best["value"] if best else None,
            "saved_topk_1pt": saved_k, "k_1pt": best_k["value"] if best_k else None,
            "dynk_minus_topk_pts": fair.gap_at_equal_flops(dynk, topk)["mean"],
            "loadavg": [round(v, 2) for v in os.getloadavg()]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 1e-3, 3e-3])
    ap.add_argument("--steps", type=int, default=150, help="fine-tuning steps, the same for every weight")
    ap.add_argument("--experts", type=int, default=24)
    ap.add_argument("--items", type=int, default=600)
    ap.add_argument("--router-steps", type=int, default=1500)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    tok = D.models.tokenizer()
    train, items = D.load_multiemo("train"), D.load_multiemo("test", args.items)
    taus = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    ks = fair.ks_for(args.experts)
    from nblib.d2dmoe.latency import machine

    out = {"model": "minilm", "recipe": "finetune.finetune_minilm at each weight, the same steps; 24 experts; "
                                        "routers as shipped; test reviews padded to the longest in each batch",
           "steps": args.steps, "weights": args.weights, "machine": machine(), "runs": [],
           "rebuild": "python scripts/d2dmoe_weight_sweep.py " + " ".join(sys.argv[1:])}
    for w in args.weights:
        print(f"weight {w:g}: fine-tuning {args.steps} steps ...", flush=True)
        r = sweep_one(w, args.steps, args.experts, items, tok, train, taus, ks, args.router_steps)
        print(f"  zero fraction {r['zero_fraction']:.3f}, dense {100 * r['dense']['accuracy']:.1f} %, saved within 1 pt: "
              f"dynamic-k {100 * r['saved_dynk_1pt']:.1f} % (tau {r['tau_1pt']}), top-k {100 * r['saved_topk_1pt']:.1f} % "
              f"(k {r['k_1pt']}); dynk - topk {r['dynk_minus_topk_pts']} pts; {r['finetune_s']:.0f}+{r['router_s']:.0f}"
              f"+{r['eval_s']:.0f} s, load {r['loadavg']}", flush=True)
        out["runs"].append(r)
        out["wall_s"] = round(time.perf_counter() - t0, 1)
        Path(args.out).write_text(json.dumps(out))          # after every weight: nothing lost if cut off
    print(f"wrote {args.out} in {out['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
