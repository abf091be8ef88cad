"""Build the shipped judge runs of notebook 03: every judge on the same seeded stream, with the embedded SmolLM2.

Writes data/lwe/runs_smollm2_<set>.json (per-case verdicts in both orders, how each was obtained, the
texts, calls and tokens per role, the meta-prompt history, the machine and this command), rewriting it
after every finished run. Every response goes to a resumable store in the user cache
($NBLIB_CACHE/lwe/<model>.jsonl): a killed build picks up where it stopped, and judges that send the
same prompt (Selective LWE's vanilla check, LWE's first batch and SSP) share one answer.

Usage: python scripts/lwe_runs.py [--set hhh] [--n 16] [--batch-sizes 4 8 2] [--methods ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib import llm, lwe  # noqa: E402
from nblib.lwe import bench  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="hhh", choices=sorted(lwe.data.SETS))
    ap.add_argument("--n", type=int, default=16, help="cases from the seeded stream")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 2])
    ap.add_argument("--methods", nargs="+", default=["vanilla", "logprob", "ssp", "lwe", "selective"])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out = args.out or ROOT / "data" / "lwe" / f"runs_smollm2_{args.set}.json"
    cases = lwe.stream(lwe.load(args.set), n=args.n)
    lm = llm.connect(args.model)
    store = lwe.ResponseStore.default(lm.name)
    cfg = lwe.JudgeConfig()
    jobs = [(m, b) for b in args.batch_sizes for m in args.methods
            if m in ("lwe", "selective") or b == args.batch_sizes[0]]
    records: dict = {}
    t_all = time.perf_counter()
    for m, b in jobs:
        t0 = time.perf_counter()
        rec = lwe.run(m, lm, cases, lwe.JudgeConfig(**{**bench._cfg_dict(cfg), "batch_size": b}), store=store)
        records[bench.key(m, b)] = rec
        s = lwe.summarize(rec)
        print(f"{bench.key(m, b)}: {time.perf_counter() - t0:.0f} s, accuracy {s['accuracy']:.3f}, "
              f"consistency {s['consistency']:.3f}, {s['calls_per_case']:.2f} calls/case, {rec.status} "
              f"(load {os.getloadavg()[0]:.2f})", flush=True)
        meta = {"model": lm.name, "set": args.set, "provenance": lwe.data.provenance(args.set), "n": len(cases),
                "seed": lwe.data.SEED, "machine": bench.machine(), "wall_s_so_far": round(time.perf_counter() - t_all),
                "command": "python scripts/lwe_runs.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "note": "wall times were measured on a shared machine under load (see machine.loadavg)"}
        bench.save_runs(out, records, meta)
    print(f"wrote {out} in {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
