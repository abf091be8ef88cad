"""LWE and Selective LWE (notebook 03): a pairwise LLM judge that learns while it evaluates.

Notebook 03's sections and where their code lives:

- pairwise cases with known ground truth (BIG-bench hhh_alignment, MT-Bench) -> `data` (load, stream, Case)
- the prompts: vanilla judge, meta-prompt, rubric, self-feedback, rewrite     -> `prompts`
- verdict parsing by the official rules                                      -> `parse` (parse_verdict, flip)
- every call counted, cached, never fatal; the log-prob fallback             -> `backend` (Caller, ResponseStore)
- Vanilla, SSP, LWE, Selective LWE (and a log-prob baseline)                 -> `methods` (run, JudgeConfig)
- the position-debiased verdict (contextual calibration; an adaptation)      -> `debias` (verdict, per_order)
- scripted judges with a controlled inconsistency rate r (simulations)       -> `scripted` (ScriptedJudge, sweep)
- accuracy, consistency, pair accuracy, bootstrap intervals                  -> `metrics` (summarize)
- side by side, the shipped runs in data/lwe/, the batch-size sweep          -> `bench` (compare, load_runs)
- position bias, one traced LWE step, the batch-size / selective panel,
  and the r panel (calls and accuracy against r, real judges as points)     -> `panel` (LWEPanel, RPanel, ...)

The notebook imports this one package: `from nblib import lwe` -> `lwe.run("selective", lm, cases)`,
`lwe.bench.compare(...)`, `lwe.panel.LWEPanel(...)`.
"""
from . import backend, bench, data, debias, methods, metrics, panel, parse, prompts, scripted
from .backend import Caller, Reply, ResponseStore, RunStopped
from .data import Case, load, stream
from .methods import METHODS, JudgeConfig, RunRecord, expected_calls, formula_calls_per_case, run
from .metrics import summarize
from .parse import flip, parse_verdict

__all__ = ["backend", "bench", "data", "debias", "scripted", "methods", "metrics", "panel", "parse", "prompts", "Caller", "Reply",
           "ResponseStore", "RunStopped", "Case", "load", "stream", "METHODS", "JudgeConfig", "RunRecord",
           "expected_calls", "formula_calls_per_case", "run", "summarize", "flip", "parse_verdict"]
