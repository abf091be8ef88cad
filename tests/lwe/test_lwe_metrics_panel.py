"""Metrics on known rows, the shipped runs, and the batch-size / selective panel over them."""
import numpy as np
import pytest

from nblib import lwe
from nblib.lwe import bench, metrics, panel


def _rec(rows, method="vanilla"):
    return lwe.RunRecord(method=method, model="m", config={"batch_size": 4, "run_swap": True}, cases=rows,
                         calls={"judge": 2 * len(rows)})


def _row(i, better, v, s, frm="parse"):
    return {"id": str(i), "better": better, "verdict": v, "swap_verdict": s, "verdict_from": frm,
            "swap_verdict_from": frm, "outcome": "parsed", "swap_outcome": "parsed"}


def test_metrics_on_known_rows():
    rows = [_row(0, "A", "A", "B"),       # right in both orders, consistent
            _row(1, "A", "A", "A"),       # position-biased: right, then wrong, inconsistent
            _row(2, "B", "A", "B"),       # wrong in both, consistent
            _row(3, "B", None, "A", frm="none")]
    s = lwe.summarize(_rec(rows))
    assert s["accuracy"] == 0.25 + 0.25 and s["swap_accuracy"] == 0.5
    assert s["consistency"] == 0.5 and s["pair_accuracy"] == 0.25 and s["said_a"] == 0.75
    assert s["strict_consistency"] == 0.5 and s["no_verdict_share"] == 0.25 and s["calls_per_case"] == 2.0
    assert s["accuracy_lo"] <= s["accuracy"] <= s["accuracy_hi"]
    assert list(metrics.cumulative_accuracy(_rec(rows))) == [1.0, 1.0, 2 / 3, 0.5]


def test_bootstrap_interval_narrows_with_more_cases():
    rng = np.random.default_rng(0)
    small, big = rng.random(20) < 0.6, rng.random(2000) < 0.6
    lo_s, hi_s = metrics.bootstrap(small)
    lo_b, hi_b = metrics.bootstrap(big)
    assert hi_b - lo_b < hi_s - lo_s and lo_b < 0.6 < hi_b


def test_paired_difference_needs_shared_cases():
    a = _rec([_row(0, "A", "A", "B"), _row(1, "B", "B", "A")])
    b = _rec([_row(0, "A", "B", "A"), _row(1, "B", "B", "A")])
    d = metrics.paired_difference(a, b)
    assert d["difference"] == 0.5 and d["n"] == 2
    with pytest.raises(ValueError, match="share no case"):
        metrics.paired_difference(a, _rec([_row(9, "A", "A", "B")]))


@pytest.fixture()
def records(scripted):
    cases = lwe.stream(lwe.load("hhh"), n=8)
    return bench.compare(scripted(judge="always_a"), cases, batch_sizes=(2, 4), progress=False)


def test_panel_moves_over_cached_runs(records):
    p = panel.LWEPanel(records, batch=4)
    on, off = p.state(batch=4, selective=True), p.state(batch=4, selective=False)
    assert on["key"] == "selective@4" and off["key"] == "lwe@4"
    assert off["summary"]["calls_per_case"] == pytest.approx(5.25)
    assert on["summary"]["calls_per_case"] == pytest.approx(2 + 1.0 * (3 + 1 / 4))   # r = 1: always inconsistent
    assert p.state(batch=2, selective=False)["formula"][2] == pytest.approx(5.5)
    before = p.label.value
    p.set(batch=2)
    assert "B 2 ·" in p.label.value and before.startswith("B 4 ·") and p.last_update_ms < 1000
    p.set(selective=False)
    assert "LWE:" in p.label.value and "Selective" not in p.label.value


def test_table_headline_and_figures(records, tmp_path):
    t = bench.table(records)
    assert "Selective LWE (B=4)" in t.index and (t["calls / case"] == t["formula"]).all()
    h = bench.headline(records)
    assert h["selective_over_lwe_calls"] == pytest.approx((2 + 3.25) / 5.25, abs=1e-3)
    assert set(h["accuracy"]) == {"vanilla", "logprob", "ssp", "lwe", "selective"}
    path = bench.save_runs(tmp_path / "runs.json", records, {"machine": bench.machine()})
    meta, back = bench.load_runs(path)
    assert meta["machine"]["cpu_count"] > 0 and bench.table(back).equals(t)
    assert "meta-prompt M" in panel.trace_html(back["lwe@4"])
    panel.position_bias_figure(back)
    panel.meta_history_figure(back["lwe@4"])


def test_shipped_runs_load_and_drive_the_panel():
    meta, recs = bench.load_runs()
    assert meta["model"] == "smollm2" and "command" in meta and meta["machine"]["loadavg"]
    for k, r in recs.items():
        assert 0 < r.n <= meta["n"] and r.status == "complete", k
        if k in meta.get("jobs", {}):
            assert r.n == meta["jobs"][k]["n"], k
        assert r.generations() == lwe.expected_calls(
            r.method, r.n, r.config["batch_size"],
            inconsistent=sum(c.get("used_lwe", False) for c in r.cases), run_swap=r.config["run_swap"])
    panel.LWEPanel(recs)


def test_panel_needs_both_runs():
    with pytest.raises(ValueError, match="at least one batch size"):
        panel.LWEPanel({})


def test_r_panel_moves_over_the_scripted_sweep():
    from nblib.lwe import scripted

    sweep = scripted.sweep(lwe.stream(lwe.load("hhh"), n=40), batch_sizes=(2, 4))
    pt = {"label": "real", "r": 0.9, "calls_per_case": 5.0, "accuracy": 0.5, "accuracy_lo": 0.3, "accuracy_hi": 0.7}
    p = panel.RPanel(sweep, [pt], r=0.3, batch=4)
    st = p.state(r=0.5, batch=2)
    assert st["row"]["selective"].calls_per_case == pytest.approx(2 + 0.5 * (3 + 1 / 2))
    assert st["ratio"] == pytest.approx((2 + 0.5 * 3.5) / 5.5)
    p.set(r=1.0, batch=4)
    assert "r = 1.0, B = 4" in p.label.value and "1.00x" in p.label.value
    with pytest.raises(ValueError, match="columns"):
        panel.RPanel(sweep.drop(columns=["formula"]))


def test_trace_summary_says_what_the_record_says(scripted, cases):
    rec = lwe.run("lwe", scripted(update_chars=100), cases[:4], lwe.JudgeConfig(batch_size=4))
    text = panel.trace_summary(rec)
    assert f"verdict is {rec.cases[0]['verdict']}" in text and "M stayed as it was" in text
    ok = lwe.run("lwe", scripted(update_chars=900), cases[:4], lwe.JudgeConfig(batch_size=4))
    assert "was accepted and replaced M" in panel.trace_summary(ok)


def test_judge_entry_without_an_lwe_run_reads_lwe_calls_from_the_formula(records):
    """A judge where only Selective LWE ran (Gemma): its ratio is against LWE's formula calls, 5 + 1/B."""
    entry = bench.judge_entry(records, {"vanilla": "vanilla", "selective": "selective@4"})
    sel = entry["calls_per_case"]["selective"]
    assert entry["calls_per_case"]["lwe (formula)"] == pytest.approx(5.25)
    assert entry["selective_over_lwe_calls"] == pytest.approx(sel / 5.25, abs=1e-3)
    assert not set(bench.GEMMA_JUDGES) & set(bench.judges(records, gemma=records))  # no debiased run: no entry
    gemma = bench.judges(records, gemma={"selective-debiased@4": records["selective@4"]})
    (name,) = bench.GEMMA_JUDGES
    assert gemma[name]["selective_over_lwe_calls"] == entry["selective_over_lwe_calls"]
