"""Build the shipped judge runs of notebook 03: every judge on the same seeded stream, with the embedded SmolLM2.

Writes data/lwe/runs_<model>_<set>.json (per-case verdicts in both orders, how each was obtained, the
texts, calls and tokens per role, the meta-prompt history, the machine, the command, and per run its case
count, wall time and load average), rewriting it after every finished run. Every response goes to a
resumable response store (default data/lwe/store_<model>_<set>.jsonl, shipped): a killed build picks up
where it stopped, and judges that send the same prompt (Selective LWE's vanilla check, the debiased gate
and the log-prob judge, LWE's first batch and SSP) share one answer. A run of n cases replays the first
n' < n from the store, so growing a run only pays for the new cases.

Usage: python scripts/lwe_runs.py [--set hhh] --jobs logprob:120 vanilla:48 selective-debiased@4:48 ...

Two builds can share one store on the two cores (each appends whole lines) if each writes its own runs file
(--out); `--merge FILE ...` then folds their runs and provenance into the shipped runs file without running
anything, and drops the store's repeated lines (a call both builds made, such as LWE's and Selective LWE's
first rubric from the same meta-prompt, is written by each).
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


def slug(model: str) -> str:
    """A file-name part for a model: "smollm2" -> "smollm2", "http://127.0.0.1:8000/v1" -> "127-0-0-1-8000-v1"."""
    text = str(model).split("://", 1)[-1].rstrip("/").lower()
    text = text.rsplit("/", 1)[-1] if "://" not in str(model) else text
    return "".join(c if c.isalnum() else "-" for c in text).strip("-") or "model"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="hhh", choices=sorted(lwe.data.SETS))
    ap.add_argument("--jobs", nargs="+", default=DEFAULT_JOBS, help="NAME:N, run in this order")
    ap.add_argument("--model", default="smollm2", help="smollm2, gemma3 (optional package), a folder, a hub name or a URL")
    ap.add_argument("--store", type=Path, default=None, help="the response store (JSON lines, resumable)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="runs files built concurrently on the same store: fold their runs into --out, run nothing")
    ap.add_argument("--table", action="store_true", help="print the runs of --out as data/lwe/README.md's table")
    args = ap.parse_args(argv)
    out = args.out or ROOT / "data" / "lwe" / f"runs_{slug(args.model)}_{args.set}.json"
    store_path = args.store or ROOT / "data" / "lwe" / f"store_{slug(args.model)}_{args.set}.jsonl"
    if args.merge:
        return merge(out, args.merge, store_path)
    if args.table:
        print(table(out))
        return 0
    jobs = [parse_job(j) for j in args.jobs]
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


def table(path: Path) -> str:
    """The runs of a runs file as a markdown table: cases, wall time, model time, load average, command."""
    meta, records = bench.load_runs(path)
    lines = ["| run | cases | wall time of the last invocation (s) | model time, all calls (s) | load average at "
             "start / end | command |", "|---|---|---|---|---|---|"]
    for name, rec in records.items():
        j = meta.get("jobs", {}).get(name, {})
        load = (f"{j['loadavg_start'][0]:.2f} / {j['loadavg_end'][0]:.2f}" if j.get("loadavg_start") else "not recorded")
        lines.append(f"| `{name}` | {rec.n} | {j.get('wall_s', float('nan')):,.0f} | {rec.wall_s:,.0f} | {load} | "
                     f"`{j.get('command', meta.get('command', ''))}` |")
    return "\n".join(lines)


def merge(out: Path, others: list[Path], store_path: Path | None = None) -> int:
    """Fold the runs (and each run's provenance in meta.jobs) of other runs files into `out`; a run of the same
    name is replaced by the other file's. The files must judge the same model on the same case set. The shared
    response store, when given, keeps one line per call."""
    meta, records = bench.load_runs(out) if out.exists() else ({}, {})
    jobs_meta = dict(meta.get("jobs", {}))
    for path in others:
        m, recs = bench.load_runs(path)
        for k in ("model", "set", "seed"):
            if meta and k in meta and m.get(k) != meta[k]:
                raise SystemExit(f"{path}: {k} is {m.get(k)!r}, {out} has {meta[k]!r}; only runs of one model on "
                                 "one case set can be merged")
        if not meta:
            meta = dict(m)
        records.update(recs)
        jobs_meta.update({k: v for k, v in m.get("jobs", {}).items() if k in recs})
        print(f"{path}: merged {', '.join(sorted(recs))}", flush=True)
    meta = {**meta, "jobs": jobs_meta, "n": max(j["n"] for j in jobs_meta.values()), "machine": bench.machine()}
    bench.save_runs(out, records, meta)
    print(f"wrote {out}: {len(records)} runs", flush=True)
    if store_path is not None:
        print(f"{store_path}: {lwe.ResponseStore(store_path).compact()} repeated line(s) dropped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
