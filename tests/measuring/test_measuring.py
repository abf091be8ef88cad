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
