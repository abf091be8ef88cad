"""C3PO (notebook 06): label-free LLM cascades with a conformal guarantee on cost.

Notebook 06's sections and where their code lives:

- K seeded samples per model and query (task models or any `nblib.llm` model) -> `sampling`
- cached per-query traces: majority answer, vote share, tokens, FLOPs         -> `traces` (task_traces, llm_traces)
- the cascade rule, the regret w.r.t. the MPM, the conformal constraint, the
  threshold search ("reuse" as in the paper's code, "split" strict variant)   -> `cascade` (fit, cascade, evaluate)
- baselines: single models, self-consistency, FrugalGPT-style, fixed votes     -> `baselines`
- the guarantee over many random calibration / test splits                     -> `guarantee`
- every method side by side at a few budgets (notebook and benchmark)          -> `bench`
- C3PO against one greedy answer of the MPM; the price lens and break-even ratio -> `lens`
- the slider panel (budget, alpha, calibration size) and the figures           -> `panel`

The notebook imports this one package: `from nblib import c3po` -> `c3po.task_traces(...)`,
`c3po.fit(...)`, `c3po.bench.compare(...)`, `c3po.panel.C3POPanel(...)`.
"""
from . import baselines, bench, cascade, guarantee, lens, panel, sampling, traces
from .cascade import (InfeasibleBudget, check_alpha, conformal_quantile, conformal_rank, configs, evaluate,
                      fit, paper_grid, random_split)
from .sampling import answer_line, sample_llm, sample_task_model
from .traces import CascadeTraces, from_samples, llm_traces, task_traces

__all__ = ["baselines", "bench", "cascade", "guarantee", "lens", "panel", "sampling", "traces", "InfeasibleBudget", "check_alpha",
           "conformal_quantile", "conformal_rank", "configs", "evaluate", "fit", "paper_grid", "random_split",
           "answer_line", "sample_llm", "sample_task_model", "CascadeTraces", "from_samples", "llm_traces",
           "task_traces"]
