"""Rebuild data/steer/frontier_v2.json.gz: notebook 04's frontier at its interactive defaults, measured here.

    python scripts/build_steer_frontier.py [--remeasure-cpu] [--profile-only]

Routes 400 held-out problems of the task world v2 mix at 25 thresholds with every baseline (nblib.steer.frontier,
about 15 minutes on one thread of a slow CPU), then writes it with nblib.steer.bench.save_frontier. With
--remeasure-cpu the CPU latency profile is measured again at the end (do it on a quiet machine); --profile-only
keeps the shipped routed runs and measures only the CPU latency profile again (seconds).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nblib import steer  # noqa: E402
from nblib import taskworld as tw  # noqa: E402


def main() -> None:
    """Compute (or take from the cache) the default frontier and write it to data/steer/."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--remeasure-cpu", action="store_true")
    ap.add_argument("--profile-only", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    fr = steer.bench.load_frontier() if a.profile_only else steer.frontier(steer.FrontierConfig())
    if a.remeasure_cpu or a.profile_only:
        names = [fr.config.small, fr.config.mid, fr.config.large]
        fr.profiles["latency_cpu"] = steer.latency.measure_cpu({n: tw.load_model(n) for n in names if n})
    out = ROOT / steer.bench.SHIPPED
    steer.bench.save_frontier(fr, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); load average {os.getloadavg()}; "
          f"CPU profile: {fr.profiles['latency_cpu'].label}")


if __name__ == "__main__":
    main()
