"""The measured frontier, its summary numbers and the slider panel."""
from __future__ import annotations

import numpy as np
import pytest

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
    assert set(s["saved_at_large_minus_1pt"]) == set(steer.ACCOUNTINGS)
    for a in steer.ACCOUNTINGS:
        assert set(s["saved_at_large_minus_1pt"][a]) == {"steer", "query", "random", "steer_mid"}
        pts = steer.bench.method_points(fr, "STEER", a)
        assert pts.rel.iloc[-1] == pytest.approx(1.0)          # large-only is the unit of every accounting
        for m in ("query routing", "random steps"):              # every method shares the two endpoints
            other = steer.bench.method_points(fr, m, a)
            assert other.cost.iloc[0] == pytest.approx(pts.cost.iloc[0]) and \
                other.cost.iloc[-1] == pytest.approx(pts.cost.iloc[-1])
        line = steer.bench.mixing_line(fr, a)
        assert line.rel.iloc[0] == pytest.approx(pts.rel.iloc[0]) and line.accuracy.iloc[-1] == pts.accuracy.iloc[-1]
    assert 0.0 <= s["large_step_share"] <= 1.0 and s["confidence_read"] in steer.READS
    assert s["confidence_auroc"] == pytest.approx(fr.reads["AUROC (valid step)"].max(), abs=1e-4)  # read="best"
    with pytest.raises(steer.UnknownAccounting):
        steer.bench.costs(fr, "joules")


def test_the_price_lens_at_the_flops_ratio_is_close_to_generated_flops(small_frontier):
    fr = small_frontier
    st = steer.bench.method_points(fr, "STEER", "generated_flops")
    big = fr.params[fr.config.large] / fr.params[fr.config.small]
    p = steer.bench.priced(fr, steer.bench.ratio_sheet(fr, big, input_share=0.0))
    p = p[p.method == "STEER"].sort_values("t")
    rel = p.cost.to_numpy() / p.cost.iloc[-1]
    assert rel[0] == pytest.approx(st.rel.iloc[0], rel=0.35) and rel[-1] == 1.0
    with pytest.raises(ValueError, match="ratio"):
        steer.bench.ratio_sheet(fr, 0.5)


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
    for name in ("v2-tiny", "v2-large"):
        folders[name] = tmp_path / "models" / name
        shutil.copytree(real(name), folders[name])
    monkeypatch.setattr(tw.models, "checkpoint_folder", lambda name, *a, **k: folders[name])
    cfg = steer.FrontierConfig(mid=None)
    assert steer.bench.frontier(cfg, verbose=False) == 1
    assert steer.bench.frontier(cfg, verbose=False) == 1                 # same weights: a hit
    w = folders["v2-large"] / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1                                                      # "retrained": one byte of a weight differs
    w.write_bytes(bytes(data))
    st = w.stat()
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))          # a new mtime even on a coarse clock
    assert steer.bench.frontier(cfg, verbose=False) == 2
    assert len(calls) == 2


def test_a_saved_frontier_loads_back_the_same_and_a_corrupt_one_says_how_to_rebuild(small_frontier, tmp_path):
    from nblib.cache import CorruptArtefact

    path = tmp_path / "fr.json.gz"
    steer.bench.save_frontier(small_frontier, path)
    back = steer.bench.load_frontier(path)
    assert back.config == small_frontier.config and back.read == small_frontier.read
    assert steer.summary(back) == steer.summary(small_frontier)
    for a in steer.ACCOUNTINGS:
        assert steer.bench.costs(back, a)["cost"].tolist() == pytest.approx(
            steer.bench.costs(small_frontier, a)["cost"].tolist())
    path.write_bytes(path.read_bytes()[:200])                     # truncated
    with pytest.raises(CorruptArtefact, match="build_steer_frontier"):
        steer.bench.load_frontier(path)
    with pytest.raises(FileNotFoundError, match="build_steer_frontier"):
        steer.bench.load_frontier(tmp_path / "missing.json.gz")
