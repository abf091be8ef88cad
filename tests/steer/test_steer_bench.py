"""The measured frontier, its summary numbers and the slider panel."""
from __future__ import annotations

import numpy as np

from nblib import steer


def test_frontier_has_every_method_and_exact_endpoints(small_frontier):
    fr = small_frontier
    methods = set(fr.points.method)
    assert {"STEER", "query routing", "random steps"} <= methods
    st = steer.bench.method_points(fr, "STEER")
    assert st.threshold.iloc[0] == 0.0 and st.threshold.iloc[-1] == 1.0
    assert st.large_share.iloc[0] == 0.0 and st.large_share.iloc[-1] == 1.0
    for m in ("query routing", "random steps"):  # every method shares the two endpoints
        pts = steer.bench.method_points(fr, m)
        assert np.isclose(pts.flops.iloc[0], st.flops.iloc[0]) and np.isclose(pts.flops.iloc[-1], st.flops.iloc[-1])
        assert pts.accuracy.iloc[-1] == st.accuracy.iloc[-1]
    s = steer.summary(fr)
    for key in ("large_accuracy", "steer_accuracy_at_best", "steer_flops_saved_at_large_minus_1pt",
                "query_routing_flops_saved_at_large_minus_1pt", "random_flops_saved_at_large_minus_1pt",
                "large_steps_share_at_that_threshold"):
        assert key in s


def test_panel_moves_along_the_frontier(small_frontier):
    p = steer.SteerPanel(small_frontier, notch=0)
    st0 = p.state(threshold=0)
    assert st0["large_share"] == 0.0 and (st0["routes"] != 2).all()
    before = (p.label.value, p.image.value)
    p.set(threshold=len(small_frontier.thresholds) - 1)
    assert p.label.value != before[0] and p.image.value != before[1]
    assert "notch 4" in p.label.value and p.last_update_ms < 1000
    assert (p.state()["routes"][p.state()["routes"] > 0] == 2).all()
