"""Build the shipped judge runs of notebook 03: every judge on the same seeded stream, with the embedded SmolLM2.

Writes data/lwe/runs_smollm2_<set>.json (per-case verdicts in both orders, how each was obtained, the
texts, calls and tokens per role, the meta-prompt history, the machine, the command, and per run its case
count, wall time and load average), rewriting it after every finished run. Every response goes to a
resumable response store (default data/lwe/store_smollm2_<set>.jsonl, shipped): a killed build picks up
where it stopped, and judges that send the same prompt (Selective LWE's vanilla check, the debiased gate
and the log-prob judge, LWE's first batch and SSP) share one answer. A run of n cases replays the first
n' < n from the store, so growing a run only pays for the new cases.

Usage: python scripts/lwe_runs.py [--set hhh] --jobs logprob:120 vanilla:48 selective-debiased@4:48 ...
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib import llm, lwe  # noqa: E402
from nblib.lwe import bench  # noqa: E402

DEFAULT_JOBS = ["logprob:120", "vanilla:48", "selective-debiased@4:48", "selective@4:48", "lwe@4:24", "ssp:24"]


def parse_job(text: str) -> tuple[str, int]:
    """"lwe@4:48" -> ("lwe@4", 48)."""
    name, _, n = text.rpartition(":")
    if not name or not n.isdigit() or int(n) < 1:
        raise SystemExit(f"a job is NAME:N (e.g. lwe@4:48), got {text!r}")
    bench.parse_key(name)
    return name, int(n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="hhh", choices=sorted(lwe.data.SETS))
    ap.add_argument("--jobs", nargs="+", default=DEFAULT_JOBS, help="NAME:N, run in this order")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--store", type=Path, default=None, help="the response store (JSON lines, resumable)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    jobs = [parse_job(j) for j in args.jobs]
    out = args.out or ROOT / "data" / "lwe" / f"runs_smollm2_{args.set}.json"
    store_path = args.store or ROOT / "data" / "lwe" / f"store_smollm2_{args.set}.jsonl"
    lm = llm.connect(args.model)
    store = lwe.ResponseStore(store_path)
    records, jobs_meta = {}, {}
    if out.exists():                      # keep the runs already built (a later job of the same name replaces one)
        old_meta, records = bench.load_runs(out)
        jobs_meta = old_meta.get("jobs", {})
    command = "python scripts/lwe_runs.py " + " ".join(argv if argv is not None else sys.argv[1:])
    t_all = time.perf_counter()
    for name, n in jobs:
        method, b, gate = bench.parse_key(name)
        cfg = lwe.JudgeConfig(batch_size=b or 4, gate=gate)
        cases = lwe.stream(lwe.load(args.set), n=n)
        t0, load0 = time.perf_counter(), os.getloadavg()
        rec = lwe.run(method, lm, cases, cfg, store=store)
        wall = time.perf_counter() - t0
        records[name] = rec
        s = lwe.summarize(rec)
        jobs_meta[name] = {"n": n, "wall_s": round(wall, 1), "model_s": round(rec.wall_s, 1),
                           "loadavg_start": [round(x, 2) for x in load0],
                           "loadavg_end": [round(x, 2) for x in os.getloadavg()], "status": rec.status,
                           "machine": bench.machine(), "command": command}
        print(f"{name}:{n}: {wall:.0f} s now ({rec.wall_s:.0f} model s in all), accuracy {s['accuracy']:.3f}, "
              f"{s['calls_per_case']:.2f} calls/case, {rec.status} (load {os.getloadavg()[0]:.2f})", flush=True)
        meta = {"model": lm.name, "set": args.set, "provenance": lwe.data.provenance(args.set), "seed": lwe.data.SEED,
                "n": max(j["n"] for j in jobs_meta.values()), "machine": bench.machine(), "jobs": jobs_meta,
                "store": str(store_path.relative_to(ROOT)) if store_path.is_relative_to(ROOT) else str(store_path),
                "command": command,
                "note": "wall times were measured on a shared 2-core machine under load (see jobs.*.loadavg_*)"}
        bench.save_runs(out, records, meta)
    print(f"wrote {out} in {time.perf_counter() - t_all:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
