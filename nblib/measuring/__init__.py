"""Measuring inference cost (notebook 00): analytic vs measured FLOPs, prefill vs decode, a cost sweep, its panel.

Notebook 00's sections and where their code lives:

- analytic vs measured FLOPs, the ledger                 -> `nblib.cost` (shared by every notebook)
- prefill vs decode; the (batch x prompt length) sweep    -> `sweep` (prefill_vs_decode, run_sweep, predict; times in
                                                             interleaved rounds, noisy points re-measured: time_points)
- the sweep's figures                                     -> `figures` (sweep_figure, bar_figure)
- the sweep's table in units, its computed prose          -> `report` (sweep_table, sweep_sentences, batching_sentence)
- the roofline: this machine's limits and the decode bound -> `sweep` (decode_roofline, weight_bytes; limits
                                                             measured by `nblib.cost.measure_machine`), `figures`
- the cost slider panel                                   -> `panel` (CostPanel)

The notebook imports this one package: `from nblib import measuring` -> `measuring.run_sweep(...)`,
`measuring.CostPanel(grid)`.
"""
from . import figures, panel, report, sweep
from .figures import bar_figure, roofline_figure, sweep_figure
from .panel import CostPanel
from .report import batching_sentence, sweep_sentences, sweep_table
from .sweep import (SweepConfig, decode_roofline, flops_check, kv_cache_mb, measure_point, point_costs, predict,
                    prefill_vs_decode, run_sweep, time_points, time_robust, weight_bytes)

__all__ = ["figures", "panel", "report", "sweep", "batching_sentence", "sweep_sentences", "sweep_table",
           "point_costs", "time_points", "time_robust", "bar_figure", "roofline_figure", "sweep_figure", "CostPanel", "SweepConfig",
           "decode_roofline", "flops_check", "kv_cache_mb", "measure_point", "predict", "prefill_vs_decode", "run_sweep",
           "weight_bytes"]
