"""Notebook 01's computed reading of the cost table (latency vs FLOPs) and its cost-quality figure (issue 22)."""
import matplotlib
import pytest

matplotlib.use("Agg")

from nblib import koala

NAMES = ["teacher", "KOALA", "BK", "T1"]


def _results(flops: dict, b1: dict, b16: dict):
    """Synthetic measure_costs / evaluate / interleaved_latency outputs: ratios as (median, min, max)."""
    costs = {n: {"flops_per_step": 1e8 * flops[n]} for n in NAMES}
    quality = {n: {"caption_acc": 0.9 + 0.01 * k, "fd": 20.0 - k, "n": 200} for k, n in enumerate(NAMES)}
    latency = {n: {"latency_ratio_b1": b1[n][0], "latency_ratio_b1_range": b1[n][1:],
                   "latency_ratio_b16": b16[n][0], "latency_ratio_b16_range": b16[n][1:]} for n in NAMES}
    return costs, quality, latency


FLOPS = {"teacher": 1.0, "KOALA": 0.60, "BK": 0.70, "T1": 0.45}
B1 = {"teacher": (1, 1, 1), "KOALA": (0.54, 0.52, 0.56), "BK": (0.80, 0.78, 0.83), "T1": (0.46, 0.40, 0.50)}
B16 = {"teacher": (1, 1, 1), "KOALA": (0.59, 0.57, 0.61), "BK": (0.72, 0.71, 0.74), "T1": (0.46, 0.44, 0.47)}


def test_latency_vs_flops_says_where_latency_fell_less_more_or_as_much():
    costs, _, latency = _results(FLOPS, B1, B16)
    t = koala.metrics.latency_vs_flops(costs, latency)
    assert list(t.index) == ["KOALA", "BK", "T1"]                       # the reference is left out
    assert t.loc["KOALA", "FLOPs vs teacher"] == pytest.approx(0.60)
    assert list(t["falls b1"]) == ["more", "less", "as much"]           # 0.56 < 0.60; 0.78 > 0.70; 0.45 in range
    assert list(t["falls b16"]) == ["as much", "less", "as much"]
    with pytest.raises(ValueError, match="reference"):
        koala.metrics.latency_vs_flops(costs, latency, reference="SDXL")


def test_the_sentences_are_computed_from_the_table_and_change_with_it():
    costs, _, latency = _results(FLOPS, B1, B16)
    text = koala.metrics.latency_vs_flops_sentences(koala.metrics.latency_vs_flops(costs, latency))
    assert "latency fell less than FLOPs for 1 of 3 (BK; e.g. BK: 0.70x FLOPs, 0.80x latency [0.78-0.83])" in text
    assert "more than FLOPs for 1 of 3 (KOALA; e.g. KOALA: 0.60x FLOPs, 0.54x latency" in text
    assert "closer to the FLOP ratio at batch 16 than at batch 1" in text
    slower = {n: (v[0] + 0.2, v[1] + 0.2, v[2] + 0.2) if n != "teacher" else v for n, v in B1.items()}
    costs, _, latency = _results(FLOPS, slower, B16)
    text = koala.metrics.latency_vs_flops_sentences(koala.metrics.latency_vs_flops(costs, latency))
    assert "latency fell less than FLOPs for 3 of 3" in text and "more than FLOPs" not in text.split("\n")[0]


def test_cost_quality_figure_puts_every_model_on_every_axes():
    costs, quality, latency = _results(FLOPS, B1, B16)
    fig = koala.panel.cost_quality_figure(costs, quality, latency)
    assert len(fig.axes) == 6
    for ax in fig.axes:
        assert len(ax.containers) == len(NAMES)                         # one errorbar series per model
    assert [t.get_text() for t in fig.legends[0].get_texts()] == NAMES
    assert "FLOPs per step" in fig.axes[3].get_xlabel() and "FD" in fig.axes[3].get_ylabel()
    del quality["BK"]
    with pytest.raises(ValueError, match="incomplete"):
        koala.panel.cost_quality_figure(costs, quality, latency)
