"""Notebook 07's panel and figures (nblib.cast.panel): sliders only index the precomputed sweep; the tree layout."""
from __future__ import annotations

from nblib import cast


def sweep_rows():
    rows = [{"batch": b, "depth": 0, "top_k": 0, "budget": 0, "tokens_per_s": 6.0 * b, "accepted": 1.0} for b in (1, 2)]
    rows += [{"batch": b, "depth": d, "top_k": k, "budget": m, "tokens_per_s": b + d + k / 10 + m / 100,
              "accepted": 1 + d / 10 + m / 100} for b in (1, 2) for d in (2, 4) for k in (2, 4) for m in (4, 12)]
    return rows


def test_panel_looks_up_the_sweep_and_has_css_hooks():
    p = cast.panel.TreeSweepPanel(sweep_rows())
    for name in ("depth", "top_k", "budget", "batch"):
        assert f"nb07-{name.replace('_', '-')}" in p.sliders[name]._dom_classes
    assert "nb07-readout" in p.label._dom_classes and "nb07-plot" in p.image._dom_classes
    p.sliders["depth"].value, p.sliders["top_k"].value = 4, 4
    p.set(budget=12, batch=2)
    st = p.state()
    assert (st["batch"], st["depth"], st["top_k"], st["budget"]) == (2, 4, 4, 12)
    assert st["tokens_per_s"] == 2 + 4 + 0.4 + 0.12
    assert "batch 2" in p.label.value and f"{st['tokens_per_s']:.1f} tok/s" in p.label.value
    assert p.image.value[:4] == b"\x89PNG" and p.last_update_ms > 0


def test_tree_layout_places_children_right_of_parents():
    par, dep = [0, 0, 0, 1, 1, 3], [0, 1, 1, 2, 2, 3]
    pos = cast.panel.tree_layout(par, dep)
    assert len(pos) == 6
    for i in range(1, 6):
        assert pos[i][0] == pos[par[i]][0] + 1
    leaves = [2, 4, 5]
    assert len({pos[i][1] for i in leaves}) == 3  # leaves get distinct rows
