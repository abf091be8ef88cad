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


def test_the_cached_frontier_follows_the_checkpoints_not_the_names(tmp_path, monkeypatch):
    """Issue 23: a retrained checkpoint under the same name gets a new frontier, not the old one."""
    import os
    import shutil

    from nblib import taskworld as tw

    monkeypatch.setenv("NBLIB_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_compute(cfg):
        calls.append(cfg)
        return len(calls)

    monkeypatch.setattr(steer.bench, "compute_frontier", fake_compute)
    real = tw.models.checkpoint_folder
    folders = {}
    for name in ("tiny", "large"):
        folders[name] = tmp_path / "models" / name
        shutil.copytree(real(name), folders[name])
    monkeypatch.setattr(tw.models, "checkpoint_folder", lambda name, *a, **k: folders[name])
    cfg = steer.FrontierConfig(mid=None)
    assert steer.bench.frontier(cfg, verbose=False) == 1
    assert steer.bench.frontier(cfg, verbose=False) == 1                 # same weights: a hit
    w = folders["large"] / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1                                                      # "retrained": one byte of a weight differs
    w.write_bytes(bytes(data))
    st = w.stat()
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))          # a new mtime even on a coarse clock
    assert steer.bench.frontier(cfg, verbose=False) == 2
    assert len(calls) == 2
