"""Notebook 02's slider panel over sweeps, and the sweep summaries (nblib.d2dmoe.panel, bench)."""
import matplotlib

matplotlib.use("Agg")

from nblib.d2dmoe import bench  # noqa: E402
from nblib.d2dmoe.panel import D2DMoEPanel  # noqa: E402


def fake_sweep(E, size, shift=0.0):
    pt = lambda rule, v, acc, fl: {"rule": rule, "value": v, "accuracy": acc, "ffn_flops_ratio": fl,  # noqa: E731
                                   "experts_per_token": [E * fl] * 3, "n_experts": E, "correct": "1"}
    return {"n_experts": E, "expert_size": size, "dense": pt("dense", float("nan"), 0.80, 1.0),
            "dynk": [pt("dynk", t, 0.80 - 0.2 * t * t - shift, 1.05 - 0.9 * t) for t in (0.0, 0.1, 0.3, 0.5, 1.0)],
            "topk": [pt("topk", k, 0.6 + 0.02 * k, k / E + 0.05) for k in (1, 2, 4, 8)]}


def test_panel_state_is_a_lookup_and_redraw_changes_the_readout():
    panel = D2DMoEPanel([fake_sweep(16, 4), fake_sweep(8, 8, shift=0.05)], tau=0.3, size=4)
    st = panel.state(tau=0.5, size=8)
    assert st["n_experts"] == 8 and abs(st["accuracy"] - 100 * (0.80 - 0.05 - 0.05)) < 1e-9
    assert abs(st["flops_pct"] - 100 * (1.05 - 0.45)) < 1e-9 and len(st["layer_pct"]) == 3
    before = panel.label.value
    assert before.startswith("tau 0.3 ·")
    panel.set(tau=0.5)
    assert panel.label.value.startswith("tau 0.5 ·") and panel.label.value != before
    assert panel.image.value[:4] == b"\x89PNG" and panel.last_update_ms < 2000
    assert "nb02-tau" in panel.sliders["tau"]._dom_classes


def test_saved_at_one_point_and_equal_flops_comparison():
    s = fake_sweep(16, 4)
    saved, best = bench.saved_at(s["dynk"], s["dense"]["accuracy"], tol=1.0)
    # accuracy within 1 point: 0.80 - 0.2 t^2 >= 0.79 -> t <= 0.22: tau 0.1 is the cheapest such point
    assert best["value"] == 0.1 and abs(saved - (1 - 0.96)) < 1e-9
    none, p = bench.saved_at(s["topk"], 0.99)
    assert none == 0.0 and p is None
    eq = bench.topk_at_equal_flops(s["dynk"], s["topk"])
    assert eq and all(e["topk_accuracy"] <= 0.76 + 1e-9 for e in eq)
    assert bench.ks_for(96) == [6, 12, 24, 36, 48, 72]


def test_panel_with_measured_latency_marks_the_nearest_measured_tau():
    lat = {4: [{"tau": 0.0, "ffn_flops_ratio": 1.0, "ffn_time_ratio": 1.1, "request_ratio": 1.05},
               {"tau": 0.3, "ffn_flops_ratio": 0.4, "ffn_time_ratio": 0.5, "request_ratio": 0.8}]}
    panel = D2DMoEPanel([fake_sweep(16, 4), fake_sweep(8, 8, shift=0.05)], tau=0.3, size=4, latency=lat)
    st = panel.state(tau=0.3, size=4)
    assert st["latency"]["ffn"] == 0.5 and st["latency"]["request"] == 0.8
    assert "FFN time 0.50x dense" in panel.draw(st)
    st8 = panel.state(tau=0.3, size=8)                 # no latency measured for that size: said, not invented
    assert st8["latency"] is None and "FFN time" not in panel.draw(st8)
    assert "no latency measured" in panel.ax_t.get_title()
