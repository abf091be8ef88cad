"""Precompute notebook 02's evaluations: data/d2dmoe/sweep_<model>.json (dense, dynamic-k over tau, top-k over k).

For each expert count with committed routers, `nblib.d2dmoe.bench.sweep` evaluates the
converted model on the same test items (MiniLM: the first --items multiemo test reviews;
task world: --items test problems) under every rule. The notebook's slider panel reads
these files; the notebook re-evaluates a few points live to show they match.

Usage: python scripts/d2dmoe_sweep.py --model minilm [--items 600] [--experts 96 48 24]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib import d2dmoe as D  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=D.models.MODELS, required=True)
    ap.add_argument("--items", type=int, default=None)
    ap.add_argument("--experts", type=int, nargs="+", default=None)
    args = ap.parse_args(argv)
    experts = args.experts or ([96, 48, 24] if args.model == "minilm" else [64, 32, 16])
    items = args.items or (600 if args.model == "minilm" else 300)
    t0 = time.perf_counter()
    sweeps = []
    for E in experts:
        s = D.bench.sweep(args.model, E, items, progress=False)
        print(f"E={E}: dense {s['dense']['accuracy']:.3f}, {s['wall_s']:.0f} s", flush=True)
        sweeps.append(s)
    out = D.data.DATA_DIR / f"sweep_{args.model}.json"
    payload = {"model": args.model, "items": items, "sweeps": sweeps, "wall_s": round(time.perf_counter() - t0, 1),
               "rebuild": f"python scripts/d2dmoe_sweep.py --model {args.model}"}
    out.write_text(json.dumps(payload) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB) in {payload['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
