"""Side by side for notebook 03 and benchmarks/lwe.py: every judge on the same stream, the shipped runs, a sweep.

`compare` runs the judges one after the other on the same cases through one response store (calls that
two judges share, such as the vanilla check inside Selective LWE, are answered once and counted for
both); `table` turns the records into one row per judge; `save_runs` / `load_runs` read and write the
shipped run records (data/lwe/runs_*.json: verdicts, calls, tokens, meta-prompt history, the machine
and the command that made them).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

from .data import DATA
from .debias import inconsistent_share
from .methods import JudgeConfig, RunRecord, formula_calls_per_case, run
from .metrics import paired_difference, summarize

LABELS = {"vanilla": "Vanilla (both orders)", "logprob": "Vanilla, log-prob verdict", "ssp": "SSP",
          "lwe": "LWE", "selective": "Selective LWE", "selective-debiased": "Selective LWE, debiased gate (adaptation)"}
RUNS_FILE = DATA / "runs_smollm2_hhh.json"
GEMMA_RUNS_FILE = DATA / "runs_gemma3_hhh.json"      # optional second local judge (scripts/lwe_runs.py --model gemma3)


def key(method: str, batch_size: int | None = None, gate: str = "parsed") -> str:
    """The name of a run in a runs file: "vanilla", "lwe@4" for a method that depends on B, and
    "selective-debiased@4" for Selective LWE with the debiased gate."""
    name = "selective-debiased" if method == "selective" and gate == "debiased" else method
    return f"{name}@{batch_size}" if method in ("lwe", "selective") else name


def parse_key(k: str) -> tuple[str, int | None, str]:
    """(method, batch size or None, gate) of a run name made by `key`."""
    name, _, b = k.partition("@")
    gate = "debiased" if name == "selective-debiased" else "parsed"
    method = "selective" if name == "selective-debiased" else name
    if method not in LABELS:
        raise ValueError(f"unknown run name {k!r}: use a method of {sorted(LABELS)}, with @B for lwe / selective")
    return method, (int(b) if b else None), gate


def label(rec: RunRecord) -> str:
    """The table label of a run: its method, its gate and its batch size."""
    name = "selective-debiased" if rec.method == "selective" and rec.config.get("gate") == "debiased" else rec.method
    return LABELS[name] + (f" (B={rec.config.get('batch_size', 4)})" if rec.method in ("lwe", "selective") else "")


def compare(lm, cases, methods=("vanilla", "logprob", "ssp", "lwe", "selective"), cfg: JudgeConfig | None = None,
            store=None, batch_sizes=(4,), progress: bool = True) -> dict[str, RunRecord]:
    """Run each judge on the same cases (LWE and Selective LWE once per batch size); records by `key`."""
    from .. import progress as bar

    cfg = cfg or JudgeConfig()
    jobs = [(m, b) for m in methods for b in (batch_sizes if m in ("lwe", "selective") else (cfg.batch_size,))]
    out = {}
    with bar(total=len(jobs) * len(cases), enabled=progress, desc="judging") as pb:
        for m, b in jobs:
            c = JudgeConfig(**{**_cfg_dict(cfg), "batch_size": b})
            pb.set_postfix_str(key(m, b))
            out[key(m, b)] = run(m, lm, cases, c, store=store, progress=pb)
    return out


def config_of(rec: RunRecord, **overrides) -> JudgeConfig:
    """The JudgeConfig a run was made with (from its record), with `overrides`."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(JudgeConfig)}
    return JudgeConfig(**{**{k: v for k, v in rec.config.items() if k in names}, **overrides})


def _cfg_dict(cfg: JudgeConfig) -> dict:
    import dataclasses

    return dataclasses.asdict(cfg)


def table(records: dict[str, RunRecord], baseline: str = "vanilla"):
    """One row per judge: accuracy [95 % interval], swap accuracy, consistency, pair accuracy, calls per case."""
    import pandas as pd

    rows = []
    for k, rec in records.items():
        s = summarize(rec)
        b = rec.config.get("batch_size", 4)
        r = s.get("inconsistent_share", 1.0)
        row = {"judge": label(rec),
               "cases": s["n"], "accuracy": s["accuracy"],
               "95% interval": f"[{s['accuracy_lo']:.2f}, {s['accuracy_hi']:.2f}]",
               "swap accuracy": s["swap_accuracy"], "consistency": s["consistency"],
               "parsed consistency": s["strict_consistency"], "pair accuracy": s["pair_accuracy"], "said A": s["said_a"], "fallback share": s["fallback_share"],
               "calls / case": s["calls_per_case"],
               "formula": formula_calls_per_case(rec.method, b, r, rec.config.get("run_swap", True)),
               "score passes / case": s["score_passes_per_case"], "tokens / case": s["tokens_per_case"],
               "model s / case": s["model_s_per_case"],
               "updates (accepted)": f"{s['updates']} ({s['accepted_updates']})"
               if rec.method in ("lwe", "selective") else ""}
        if baseline in records and k != baseline:
            d = paired_difference(rec, records[baseline])
            row[f"acc − {baseline} [95%]"] = f"{d['difference']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}]"
        rows.append(row)
    return pd.DataFrame(rows).set_index("judge")


def headline(records: dict[str, RunRecord], batch_size: int = 4) -> dict:
    """The benchmark's JSON: calls per case and accuracy per method, and Selective LWE's calls over LWE's."""
    out: dict = {"calls_per_case": {}, "accuracy": {}, "accuracy_interval": {}, "consistency": {}}
    for rec in records.values():
        if rec.method in ("lwe", "selective") and rec.config.get("batch_size") != batch_size:
            continue
        s = summarize(rec)
        out["calls_per_case"][rec.method] = round(s["calls_per_case"], 4)
        out["accuracy"][rec.method] = round(s["accuracy"], 4)
        out["accuracy_interval"][rec.method] = [round(s["accuracy_lo"], 4), round(s["accuracy_hi"], 4)]
        out["consistency"][rec.method] = None if s["consistency"] != s["consistency"] else round(s["consistency"], 4)
        if rec.method == "selective":
            out["inconsistent_share"] = round(s["inconsistent_share"], 4)
    cpc = out["calls_per_case"]
    if "lwe" in cpc and "selective" in cpc:
        out["selective_over_lwe_calls"] = round(cpc["selective"] / cpc["lwe"], 4)
    vk, sk = "vanilla", key("selective", batch_size)
    if vk in records and sk in records:
        d = paired_difference(records[sk], records[vk])
        out["selective_minus_vanilla_accuracy"] = [round(d["difference"], 4), round(d["lo"], 4), round(d["hi"], 4)]
    return out


def machine() -> dict:
    """Where a run was made: host CPU, cores, torch threads, load average, date."""
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def save_runs(path: str | Path, records: dict[str, RunRecord], meta: dict) -> Path:
    """Write run records and their provenance (machine, command, model, case set) as one JSON file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "runs": {k: r.to_json() for k, r in records.items()}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path


def gemma_runs() -> dict[str, RunRecord]:
    """Gemma-3-270M's shipped run records (GEMMA_RUNS_FILE), or {} where they were not built."""
    return load_runs(GEMMA_RUNS_FILE)[1] if GEMMA_RUNS_FILE.exists() else {}


def load_runs(path: str | Path = RUNS_FILE) -> tuple[dict, dict[str, RunRecord]]:
    """The provenance and the run records of a runs file (default: the shipped SmolLM2 runs on HHH)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; rebuild it with `python scripts/lwe_runs.py`")
    doc = json.loads(path.read_text())
    if "runs" not in doc or "meta" not in doc:
        raise ValueError(f"{path} is not a runs file (it needs the keys 'meta' and 'runs')")
    return doc["meta"], {k: RunRecord.from_json(v) for k, v in doc["runs"].items()}


# ----------------------------------------------------------------------------- judges as points of the r plot
GOAL_RATIO = 0.6     # issue 25: Selective LWE at most 0.6 x LWE's calls per case ...
REAL_JUDGES = {      # ... on a real local judge; its methods -> the run names in the runs file
    "SmolLM2-135M, paper's gate (raw verdicts)": {"vanilla": "vanilla", "logprob": "logprob", "ssp": "ssp",
                                                   "lwe": "lwe@4", "selective": "selective@4"},
    "SmolLM2-135M, debiased gate (adaptation)": {"vanilla": "vanilla", "logprob": "logprob", "lwe": "lwe@4",
                                                  "selective": "selective-debiased@4"},
}
GEMMA_JUDGES = {     # judges read from GEMMA_RUNS_FILE when it exists
    "Gemma-3-270M (base), debiased gate (adaptation)": {"vanilla": "vanilla", "logprob": "logprob", "lwe": "lwe@4",
                                                         "selective": "selective-debiased@4"},
}


def _acc(s: dict) -> dict:
    return {"value": round(s["accuracy"], 4), "lo": round(s["accuracy_lo"], 4), "hi": round(s["accuracy_hi"], 4),
            "n": s["n"]}


def judge_entry(records: dict[str, RunRecord], methods: dict[str, str]) -> dict | None:
    """n, r, calls per case and accuracy (95 % interval) per method, Selective over LWE calls, for one judge.

    `methods` maps a method to its run name in `records`; methods whose run is missing are left out, and
    None is returned when Selective LWE's run is missing."""
    present = {m: records[k] for m, k in methods.items() if k in records}
    if "selective" not in present:
        return None
    summ = {m: summarize(r) for m, r in present.items()}
    sel = summ["selective"]
    out = {"n": {m: s["n"] for m, s in summ.items()}, "r": round(sel["inconsistent_share"], 4),
           "calls_per_case": {m: round(s["calls_per_case"], 4) for m, s in summ.items()},
           "accuracy": {m: _acc(s) for m, s in summ.items()},
           "runs": dict(methods)}
    if "position_prior" in present["selective"].config and present["selective"].config.get("gate") == "debiased":
        out["position_prior"] = present["selective"].config["position_prior"]
    if "lwe" in summ:
        out["selective_over_lwe_calls"] = round(sel["calls_per_case"] / summ["lwe"]["calls_per_case"], 4)
    else:            # LWE not run on this judge: its calls per case are the formula's (tests pin runs to it)
        b = present["selective"].config.get("batch_size", 4)
        lwe_calls = formula_calls_per_case("lwe", b)
        out["calls_per_case"]["lwe (formula)"] = round(lwe_calls, 4)
        out["selective_over_lwe_calls"] = round(sel["calls_per_case"] / lwe_calls, 4)
    if "logprob" in present and out.get("position_prior") is not None:  # the gate's r on every log-prob case
        out["r_logprob_cases"] = {"r": round(inconsistent_share(present["logprob"], out["position_prior"]), 4),
                                  "n": present["logprob"].n}
    if "vanilla" in present:
        d = paired_difference(present["selective"], present["vanilla"])
        out["selective_minus_vanilla_accuracy"] = [round(d["difference"], 4), round(d["lo"], 4), round(d["hi"], 4),
                                                   d["n"]]
        out["selective_not_below_vanilla"] = bool(d["hi"] >= 0)
    return out


def scripted_entries(sweep, batch_size: int = 4) -> dict:
    """The scripted judges (simulations) of a `scripted.sweep` at one batch size, in the shape of `judge_entry`."""
    out = {}
    for r, g in sweep[sweep.B == batch_size].groupby("r"):
        by = {row.method: row for row in g.itertuples()}
        name = f"scripted r={r:.1f} (simulation)"
        out[name] = {"n": {m: int(x.n) for m, x in by.items()}, "r": round(float(by["selective"].measured_r), 4),
                     "calls_per_case": {m: round(float(x.calls_per_case), 4) for m, x in by.items()},
                     "accuracy": {m: {"value": round(float(x.accuracy), 4), "lo": round(float(x.accuracy_lo), 4),
                                      "hi": round(float(x.accuracy_hi), 4), "n": int(x.n)} for m, x in by.items()},
                     "selective_over_lwe_calls": round(float(by["selective"].calls_per_case / by["lwe"].calls_per_case), 4)}
    return out


def goal(judges: dict) -> dict:
    """Issue 25's goal over the real judges: Selective LWE <= 0.6 x LWE's calls and not below vanilla's accuracy."""
    real = {k: v for k, v in judges.items() if "scripted" not in k and v is not None}
    met = [k for k, v in real.items() if v.get("selective_over_lwe_calls", 9) <= GOAL_RATIO
           and v.get("selective_not_below_vanilla", False)]
    best = min(real, key=lambda k: real[k].get("selective_over_lwe_calls", 9)) if real else None
    return {"ratio_goal": GOAL_RATIO, "met": bool(met), "met_by": met,
            "best_real_judge": best, "best_ratio": real[best].get("selective_over_lwe_calls") if best else None,
            "raw_ratio": real.get(next(iter(REAL_JUDGES)), {}).get("selective_over_lwe_calls")}


def judges(records: dict[str, RunRecord], sweep=None, batch_size: int = 4, gemma: dict | None = None) -> dict:
    """Every judge of the benchmark's JSON: the real ones from the runs (and `gemma`, Gemma-3-270M's records when
    given), then the scripted ones from the sweep."""
    out = {name: judge_entry(records, methods) for name, methods in REAL_JUDGES.items()}
    if gemma:
        out.update({name: judge_entry(gemma, methods) for name, methods in GEMMA_JUDGES.items()})
    out = {k: v for k, v in out.items() if v is not None}
    if sweep is not None:
        out.update(scripted_entries(sweep, batch_size))
    return out
