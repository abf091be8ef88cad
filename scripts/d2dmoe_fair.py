"""Build data/d2dmoe/fair_minilm.json: the fair dynamic-k vs top-k comparison behind notebook 02 (issue 28).

For each expert count: dense, dynamic-k and static top-k with the trained routers, the same two rules with the
experts' true output norms (oracle), and one tau per layer at equal expert shares (our extension), on the same
test reviews padded to 64 positions, each point with FFN FLOPs over the real tokens and over every position.
`--routers` evaluates another router file too (e.g. the longer-trained routers), under its own label.

Usage: python scripts/d2dmoe_fair.py [--experts 24 96] [--items 600] [--quick]
       python scripts/d2dmoe_fair.py --experts 24 --routers short=/tmp/minilm_routers_e24_short.safetensors
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib import d2dmoe as D  # noqa: E402
from nblib.d2dmoe import fair  # noqa: E402
from nblib.d2dmoe.bench import capture_inputs  # noqa: E402

OUT = D.data.DATA_DIR / "fair_minilm.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experts", type=int, nargs="+", default=[24, 96])
    ap.add_argument("--items", type=int, default=600, help="multiemo test reviews (the shipped sweeps use 600)")
    ap.add_argument("--calib", type=int, default=100, help="training reviews whose FFN inputs calibrate tau per layer")
    ap.add_argument("--routers", nargs="*", default=[], help="extra router files as label=path ({E} = expert count)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--quick", action="store_true", help="a few items and points (a smoke run)")
    ap.add_argument("--append", action="store_true", help="add to (or replace the same runs in) the existing --out")
    ap.add_argument("--only-extra", action="store_true", help="run only the --routers files, not the shipped ones")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    tok = D.models.tokenizer()
    reviews = D.load_multiemo("test", 24 if a.quick else a.items)
    calib = D.load_multiemo("train", 16 if a.quick else a.calib)
    runs = [] if a.only_extra else [(E, "trained", None) for E in a.experts]
    for spec in a.routers:
        label, path = spec.split("=", 1)
        runs += [(E, label, path.replace("{E}", str(E))) for E in a.experts if Path(path.replace("{E}", str(E))).exists()]
    out = {"items": len(reviews), "model": "minilm", "sweeps": [], "cpu": platform.processor() or platform.machine(),
           "torch_threads": torch.get_num_threads(), "loadavg_start": os.getloadavg(),
           "rebuild": "python scripts/d2dmoe_fair.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    t0 = time.perf_counter()
    for E, label, path in runs:
        model, layers = D.load_moe("minilm", E, routers=path)
        inputs = capture_inputs("minilm", model, layers, calib)
        kw = {"taus": (0.0, 0.5), "ks": (2,), "shares": (0.3,)} if a.quick else {}
        # the oracle rules do not read the routers: run them once per expert count, with the shipped routers
        rules = fair.RULES if path is None else ("dynk", "topk", "dynk_layer")
        s = fair.fair_sweep(model, layers, tok, reviews, inputs, rules=rules, **kw)
        s["routers"] = label if path is None else f"{label} ({Path(path).name})"
        v = fair.verdict(s)
        print(f"E={E} {s['routers']}: dense {v['dense_accuracy']:.3f}; dynk - topk at equal FLOPs "  # noqa: E501
              f"router {v['dynk_minus_topk_router_unpadded']}, oracle {v['dynk_minus_topk_oracle_unpadded']}; "
              f"saved within 1 pt: dynk {v.get('saved_dynk', 0):.3f} topk {v.get('saved_topk', 0):.3f} "
              f"oracle {v.get('saved_oracle', 0):.3f} oracle_topk {v.get('saved_oracle_topk', 0):.3f} "
              f"per-layer {v.get('saved_dynk_layer', 0):.3f} ({s['wall_s']:.0f} s, load {os.getloadavg()})",
              flush=True)
        out["sweeps"].append(s)
    if a.append and Path(a.out).exists():
        old = json.loads(Path(a.out).read_text())
        new = {(x["n_experts"], x["routers"]) for x in out["sweeps"]}
        out["sweeps"] = [x for x in old["sweeps"] if (x["n_experts"], x["routers"]) not in new] + out["sweeps"]
        out["rebuild"] = old.get("rebuild", "") + " && " + out["rebuild"]
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["loadavg_end"] = os.getloadavg()
    Path(a.out).write_text(json.dumps(out) + "\n")
    print(f"wrote {a.out} ({Path(a.out).stat().st_size / 1e3:.0f} kB) in {out['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
