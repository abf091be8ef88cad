"""Sweeps measure real points; slider panels only index them and redraw."""
import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from nblib import cost, measuring


@pytest.fixture(scope="module")
def grid(tiny_model, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBLIB_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield measuring.run_sweep(tiny_model, measuring.SweepConfig("tiny", (1, 2, 4), (8, 16), decode_steps=2, repeats=2),
                           progress=False)


def test_sweep_points_are_measured(grid, tiny_model):
    assert len(grid) == 6
    assert (grid["prefill_flops"] == grid["prefill_flops_analytic"]).all()
    assert (grid["decode_flops"] == grid["decode_flops_analytic"]).all()
    assert (grid["prefill_ms"] > 0).all() and (grid["decode_ms"] > 0).all() and (grid["peak_mb"] > 0).all()
    assert (grid["work_mb"] >= 0).all() and (grid["work_mb"] < grid["peak_mb"]).all()
    # the analytic KV size equals the bytes of a real cache: run the model and add up its keys and values
    row = grid[(grid.batch == 4) & (grid.seq == 8)].iloc[0]
    with torch.no_grad():
        kv = tiny_model(input_ids=torch.ones(4, 8, dtype=torch.long), use_cache=True).cache
    nbytes = sum(t.numel() * t.element_size() for layer in kv.layers for t in (layer.keys, layer.values))
    assert row.kv_mb_per_token == pytest.approx(nbytes / 8 / 1e6)
    shape = cost.TransformerShape.from_config(tiny_model.config)
    assert row.kv_mb_per_token == pytest.approx(2 * shape.n_layers * shape.n_kv_heads * shape.head_dim * 4 * 4 / 1e6)


def test_sweep_is_cached(grid, tiny_model, capsys):
    again = measuring.run_sweep(tiny_model, measuring.SweepConfig("tiny", (1, 2, 4), (8, 16), decode_steps=2, repeats=2),
                            progress=False)
    assert "hit" in capsys.readouterr().out
    assert again.equals(grid)


def test_predict_adds_prefill_and_decode(grid):
    p = measuring.predict(grid, 2, 16, 10)
    row = grid[(grid.batch == 2) & (grid.seq == 16)].iloc[0]
    assert p["total_ms"] == pytest.approx(row.prefill_ms + 10 * row.decode_ms)
    assert p["tokens_per_s"] == pytest.approx(2 * 10 / (p["total_ms"] / 1e3))
    assert measuring.predict(grid, 2, 16, 20)["total_ms"] > p["total_ms"]
    with pytest.raises(ValueError, match="not in the sweep"):
        measuring.predict(grid, 3, 16, 10)
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        measuring.predict(grid, 0, 16, 10)


def test_bad_grid_is_rejected(tiny_model):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        measuring.run_sweep(tiny_model, measuring.SweepConfig("tiny", (0, 1), (8,)), progress=False)


def test_panel_moves_redraw_label_and_plot(grid):
    panel = measuring.CostPanel(grid, new_tokens=8)
    label0, png0 = panel.label.value, panel.image.value
    assert bytes(png0).startswith(b"\x89PNG")
    panel.sliders["batch"].value = 4           # as the reader moves it: the observer redraws
    assert panel.label.value != label0 and panel.image.value != png0
    assert "batch 4" in panel.label.value
    row = grid[(grid.batch == 4) & (grid.seq == 8)].iloc[0]
    assert panel.state()["total_ms"] == pytest.approx(row.prefill_ms + 8 * row.decode_ms)
    panel.set(new=100)
    assert "100 new tok" in panel.label.value
    assert panel.last_update_ms > 0
    assert panel.state(batch=2, seq=16, new=10) == measuring.predict(grid, 2, 16, 10)   # pure, plain values
    assert panel.values() == {"batch": 4, "seq": 8, "new": 100}
    for name in ("batch", "seq", "new"):
        assert f"nb00-{name}" in panel.sliders[name]._dom_classes
    assert "nb00-readout" in panel.label._dom_classes and "nb00-plot" in panel.image._dom_classes


def test_prefill_vs_decode_same_tokens(tiny_model):
    led = measuring.prefill_vs_decode(tiny_model, tokens=8, repeats=1)
    pre, dec = led.entries
    assert pre.completion_tokens == dec.completion_tokens == 8 and dec.calls == 8
    # same matmuls except attention (full square vs triangle): within a few percent
    assert abs(dec.flops / pre.flops - 1) < 0.05


def test_decode_roofline_matches_a_hand_count(grid, tiny_model):
    limits = cost.MachineLimits(read_bytes_per_s=1e9, matmul_flops_per_s=1e12, threads=1)
    weights = measuring.weight_bytes(tiny_model)
    assert weights == sum(p.numel() * 4 for p in tiny_model.parameters())      # fp32
    roof = measuring.decode_roofline(grid, limits, weights)
    r, g = roof.iloc[0], grid.iloc[0]
    kv_bytes = g["kv_mb_per_token"] * 1e6 * (g["seq"] + 1)                      # the whole batch's KV cache
    assert r["bound tok/s"] == pytest.approx(g["batch"] * 1e9 / (weights + kv_bytes))   # memory binds here
    assert r["limited by"] == "memory"
    assert r["measured tok/s"] == pytest.approx(g["batch"] / (g["decode_ms"] / 1e3))
    fig = measuring.roofline_figure(roof, limits)
    assert len(fig.axes) == 1


def test_flops_check_formula_equals_the_counter(tiny_model):
    table = measuring.flops_check(tiny_model, cases=((1, 8, 0), (2, 1, 8)))
    assert list(table["analytic / measured"].round(6)) == [1.0, 1.0]


def tiny_llama(layers, seed):
    """A random-init LlamaForCausalLM of a given depth and seed."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                      intermediate_size=64, vocab_size=97, max_position_embeddings=64, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


def test_the_sweep_cache_follows_the_models_weights_not_the_label(tmp_path, monkeypatch, capsys):
    """Issue 23: one SweepConfig label, two models -> the second is measured, not served the first's numbers."""
    monkeypatch.setenv("NBLIB_CACHE", str(tmp_path))
    cfg = measuring.SweepConfig("my-model", (1,), (8,), decode_steps=1, repeats=1)
    small, bigger = tiny_llama(layers=1, seed=0), tiny_llama(layers=3, seed=0)
    a = measuring.run_sweep(small, cfg, progress=False)
    b = measuring.run_sweep(bigger, cfg, progress=False)
    out = capsys.readouterr().out
    assert out.count("computed") == 2 and "hit" not in out
    assert b.prefill_flops.iloc[0] > a.prefill_flops.iloc[0]          # the bigger model's own count
    same_arch_other_weights = tiny_llama(layers=1, seed=1)
    measuring.run_sweep(same_arch_other_weights, cfg, progress=False)
    assert "computed" in capsys.readouterr().out                       # retrained weights: measured again
    measuring.run_sweep(tiny_llama(layers=1, seed=0), cfg, progress=False)
    assert "hit" in capsys.readouterr().out                            # the same weights in a new object: a hit


# --- issue 22: robust timing (interleaved rounds, noisy points re-measured), the table and computed prose -----------
def test_time_robust_remeasures_a_noisy_function_and_keeps_the_flag_of_one_that_stays_noisy():
    import time

    calls = {"burst": 0, "always": 0}

    def steady():
        time.sleep(0.004)

    def burst():                      # the second timed call hits a burst of load, later calls do not
        calls["burst"] += 1
        time.sleep(0.040 if calls["burst"] == 3 else 0.004)

    def always():                     # every other call is slow: no re-measurement makes it agree
        calls["always"] += 1
        time.sleep(0.040 if calls["always"] % 2 else 0.004)

    res = measuring.time_robust({"steady": steady, "burst": burst, "always": always}, repeats=3, retries=2)
    assert res["steady"]["remeasured"] == 0 and not res["steady"]["noisy"]
    assert res["burst"]["remeasured"] == 1 and not res["burst"]["noisy"]          # re-measured, then clean
    assert res["burst"]["timing"].median_ms < 20 and res["burst"]["timing"].max_ms < 20   # the burst is gone
    assert res["always"]["remeasured"] == 2 and res["always"]["noisy"]           # flagged, not hidden
    assert calls["always"] == 1 + 3 * 3                                          # warm-up + three sets of rounds
    with pytest.raises(ValueError, match="retries"):
        measuring.time_robust({"steady": steady}, retries=-1)
    assert measuring.sweep.relative_spread([9.0, 10.0, 11.0]) == pytest.approx(0.2)


def test_time_points_leaves_each_decode_cache_at_the_prompt_and_reports_every_point(tiny_model):
    times = measuring.time_points(tiny_model, [(1, 8), (2, 16)], decode_steps=3, repeats=2)
    assert set(times) == {(1, 8), (2, 16)}
    for t in times.values():
        assert t["prefill_ms"] > 0 and t["decode_ms"] > 0 and t["decode_spread_ms"] >= 0
        assert t["remeasured"] in (0, 1, 2) and isinstance(t["noisy"], bool)
    # the decode function crops its cache back to the prompt: a second round decodes at the same contexts
    from transformers import DynamicCache

    cache = tiny_model(input_ids=torch.ones(1, 8, dtype=torch.long), use_cache=True).cache
    assert isinstance(cache, DynamicCache)
    for _ in range(3):
        tiny_model(input_ids=torch.ones(1, 1, dtype=torch.long), cache=cache, use_cache=True)
    cache.crop(-3)
    assert cache.get_seq_length() == 8


def test_the_sweep_records_its_timing_quality(grid):
    assert {"remeasured", "noisy", "load_avg"} <= set(grid.columns)
    assert grid["remeasured"].between(0, measuring.sweep.RETRIES).all()


def test_sweep_table_has_units_and_no_raw_flop_integers(grid):
    t = measuring.sweep_table(grid)
    assert len(t) == len(grid) and "prefill_flops_analytic" not in t
    assert all(("ms" in c or "FLOPs" in c or "MB" in c or c in ("batch", "prompt tok", "re-measured", "noisy"))
               for c in t.columns)
    assert t["prefill GFLOPs"].iloc[0] == pytest.approx(grid["prefill_flops"].iloc[0] / 1e9)
    assert set(measuring.report.TABLE_FORMATS) <= set(t.columns)


def _synthetic(decode_b8: float):
    import pandas as pd

    rows = [dict(batch=b, seq=s, prefill_ms=0.5 * b * s, prefill_spread_ms=1.0, decode_ms=40.0 if b == 1 else
                 40.0 + (decode_b8 - 40.0) * (b - 1) / 7, decode_spread_ms=1.0, prefill_flops=1e9 * b * s,
                 decode_flops=1e9 * b, work_mb=b * s / 10, peak_mb=600.0, kv_mb_per_token=0.05 * b)
            for b in (1, 2, 4, 8) for s in (32, 128)]
    return pd.DataFrame(rows)


def test_sweep_sentences_follow_the_numbers_not_a_fixed_claim():
    memory_bound = measuring.sweep_sentences(_synthetic(decode_b8=60.0))
    assert "40.0 ms for 1 sequence and 60.0 ms for 8: 1.5x the time for 8x the sequences" in memory_bound
    assert "far more slowly than the batch" in memory_bound and "5.3x at batch 8" in memory_bound
    assert "roughly in proportion" in memory_bound
    compute_bound = measuring.sweep_sentences(_synthetic(decode_b8=310.0))
    assert "about as fast as the batch" in compute_bound and "little on this machine" in compute_bound
    middle = measuring.sweep_sentences(_synthetic(decode_b8=200.0))
    assert "more slowly than the batch, though not for free" in middle


def test_batching_sentence_states_latency_and_throughput_from_the_grid():
    g = _synthetic(decode_b8=60.0)
    p1, p8 = measuring.predict(g, 1, 32, 64), measuring.predict(g, 8, 32, 64)
    text = measuring.batching_sentence(g, 32, 64)
    assert f"({p8['total_ms'] / p1['total_ms']:.2f}x)" in text and "grows, but far less than the batch" in text
    assert f"throughput grows {p8['tokens_per_s'] / p1['tokens_per_s']:.2f}x" in text
    flat = g.assign(decode_ms=40.0, prefill_ms=1.0)
    assert "barely changes" in measuring.batching_sentence(flat, 32, 64)
