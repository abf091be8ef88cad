"""The slider panel: pure state at slider values, redraws on a move, fast enough to drag."""
from __future__ import annotations

import numpy as np


def test_panel_state_and_redraw(traces):
    from nblib.c3po.panel import C3POPanel

    p = C3POPanel(traces, n_splits=100, scale=1.0, unit="FLOPs")
    opts = [v for _, v in p.sliders["budget"].options]
    lo, hi = p.state(budget=opts[2], alpha=0.1), p.state(budget=opts[-1], alpha=0.1)
    assert hi["accuracy"] >= lo["accuracy"]                       # more budget, no less accuracy
    assert len(hi["curve"]) == 10
    assert all(v <= a + s for (v, s), a in zip(hi["curve"], np.arange(0.05, 0.51, 0.05), strict=True))
    before, img = p.label.value, p.image.value
    p.set(alpha=0.3, n_cal=100)
    assert p.label.value != before and p.image.value != img
    assert "alpha 0.30" in p.label.value and "|D_cal| 100" in p.label.value
    assert p.last_update_ms < 1000                                # a generous ceiling; the notebook prints it
