"""The cost ledger: analytic FLOPs agree with torch's counter; time, memory and USD behave."""
import numpy as np
import pytest
import torch

from nblib import cost


@pytest.mark.parametrize("layers,d,heads,kv,ff", [(2, 64, 4, 4, 128), (3, 96, 6, 2, 200), (1, 32, 2, 1, 64)])
@pytest.mark.parametrize("batch,new,past", [(1, 16, 0), (3, 7, 0), (2, 1, 9), (4, 5, 11)])
def test_analytic_flops_match_measured_llama(layers, d, heads, kv, ff, batch, new, past, make_tiny_llama):
    model = make_tiny_llama(layers, d, heads, kv, ff)
    shape = cost.TransformerShape.from_config(model.config)
    cache = model(input_ids=torch.ones(batch, past, dtype=torch.long)).cache if past else None
    _, measured = cost.measure_flops(lambda: model(input_ids=torch.ones(batch, new, dtype=torch.long), cache=cache))
    analytic = cost.transformer_flops(shape, batch, new, past=past)
    assert measured > 0
    assert analytic == measured                                    # exact: every matmul of the forward is counted
    if past:
        assert analytic > cost.transformer_flops(shape, batch, new)  # and the cached keys are attended to


def test_analytic_flops_match_measured_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=101, n_positions=64)).eval()
    shape = cost.TransformerShape.from_config(model.config)
    assert not shape.gated_mlp
    _, measured = cost.measure_flops(lambda: model(input_ids=torch.ones(2, 12, dtype=torch.long)))
    assert cost.transformer_flops(shape, 2, 12) == measured


def test_logits_positions_counts_only_the_lm_head(make_tiny_llama):
    shape = cost.TransformerShape.from_config(make_tiny_llama().config)
    full, last = cost.transformer_flops(shape, 1, 10), cost.transformer_flops(shape, 1, 10, logits_positions=1)
    assert full - last == 9 * 2 * shape.d_model * shape.vocab


def test_shape_params_match_the_model_without_norm_vectors(make_tiny_llama):
    model = make_tiny_llama(3, 96, 6, 2, 200)
    shape = cost.TransformerShape.from_config(model.config)
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    assert shape.params() == sum(p.numel() for p in model.parameters()) - norms


@pytest.mark.parametrize("bad", [0, -1, 1.5, None, True])
def test_bad_batch_is_one_clear_error(bad, make_tiny_llama):
    shape = cost.TransformerShape.from_config(make_tiny_llama().config)
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        cost.transformer_flops(shape, bad, 4)


def test_shape_from_unknown_config_is_a_clear_error():
    class Cfg:
        model_type = "mystery"
    with pytest.raises(ValueError, match="cannot read transformer shapes"):
        cost.TransformerShape.from_config(Cfg())


def test_time_fn_reports_median_of_repeats():
    calls = []
    t = cost.time_fn(lambda: calls.append(1), warmup=2, repeats=5)
    assert len(calls) == 7 and t.repeats == 5 and len(t.samples_ms) == 5
    assert t.min_ms <= t.median_ms <= t.max_ms
    assert t.median_ms == sorted(t.samples_ms)[2]
    with pytest.raises(ValueError):
        cost.time_fn(lambda: None, repeats=0)


def test_peak_memory_sees_a_large_allocation():
    def alloc():
        a = np.ones(50_000_000)  # 400 MB, touched
        return float(a[::4096].sum())
    _, above, total = cost.peak_memory(alloc)
    assert above > 250          # MB above the start
    assert total >= above


def test_quantity_units_convert_and_print():
    q = cost.Quantity(3.2e9, "FLOPs")
    assert q.to("GFLOPs").value == pytest.approx(3.2)
    assert str(q) == "3.2 GFLOPs"
    assert str(cost.Quantity(1500, "ms")) == "1.5 s"
    assert str(cost.Quantity(0.25, "USD")) == "$0.25"
    with pytest.raises(ValueError, match="cannot convert"):
        q.to("ms")
    with pytest.raises(ValueError, match="unknown unit"):
        cost.Quantity(1, "parsecs")


def test_ledger_prices_and_table():
    led = cost.Ledger(cost.Prices(usd_per_hour=3.6, usd_per_1m_completion=2.0))
    e = led.add("run", wall_ms=1000.0, completion_tokens=500_000, calls=2, note="x")
    # 1 s at 3.6 USD/h = 0.001 USD; 0.5M tokens at 2 USD/1M = 1 USD
    assert e.usd(led.prices) == pytest.approx(1.001)
    assert e.usd_per_1m_tokens(led.prices) == pytest.approx(2.002)
    df = led.frame()
    assert {"GFLOPs", "wall ms", "peak MB", "USD", "USD / 1M tok", "note"} <= set(df.columns)
    with pytest.raises(ValueError, match="usd_per_hour must be a number >= 0"):
        cost.Prices(usd_per_hour=-1)
    tot = cost.total([e, led.add("b", wall_ms=500.0, peak_mb=10.0, calls=1)])
    assert tot.wall_ms == 1500.0 and tot.calls == 3 and tot.peak_mb == 10.0


def test_ledger_measure_fills_every_column(tiny_model):
    led = cost.Ledger()
    ids = torch.ones(1, 8, dtype=torch.long)
    e = led.measure("fwd", lambda: tiny_model(input_ids=ids), repeats=2)
    assert e.flops == cost.transformer_flops(cost.TransformerShape.from_config(tiny_model.config), 1, 8)
    assert e.wall_ms > 0 and e.peak_mb > 0


@pytest.mark.slow
def test_smollm2_analytic_equals_measured(smollm2):
    model, _ = smollm2
    shape = cost.TransformerShape.from_config(model.config)
    _, measured = cost.measure_flops(lambda: model(input_ids=torch.ones(2, 24, dtype=torch.long)))
    assert cost.transformer_flops(shape, 2, 24) == measured


def test_decode_roofline_bound_by_hand():
    """10 GB/s and 100 GFLOP/s; 1 GB of weights, 2 GFLOPs per token: memory binds at batch 1, compute at 64."""
    limits = cost.MachineLimits(read_bytes_per_s=10e9, matmul_flops_per_s=100e9, threads=1)
    b1 = cost.decode_bound_tokens_per_s(limits, weight_bytes=1e9, flops_per_token=2e9, batch=1)
    assert b1["memory_tokens_per_s"] == pytest.approx(10.0) and b1["compute_tokens_per_s"] == pytest.approx(50.0)
    assert b1["bound_tokens_per_s"] == pytest.approx(10.0) and b1["limited_by"] == "memory"
    b64 = cost.decode_bound_tokens_per_s(limits, weight_bytes=1e9, flops_per_token=2e9, batch=64)
    assert b64["bound_tokens_per_s"] == pytest.approx(50.0) and b64["limited_by"] == "compute"
    kv = cost.decode_bound_tokens_per_s(limits, weight_bytes=1e9, flops_per_token=2e9, batch=4, kv_bytes_per_row=0.25e9)
    assert kv["memory_tokens_per_s"] == pytest.approx(4 * 10e9 / 2e9)   # 4 rows, 2 GB read per step
    assert limits.ridge_flops_per_byte == pytest.approx(10.0)
    with pytest.raises(ValueError, match="batch"):
        cost.decode_bound_tokens_per_s(limits, 1e9, 2e9, batch=0)


def test_measure_machine_is_positive_and_fast():
    limits = cost.measure_machine(read_mb=16, matmul_n=256, repeats=2)
    assert limits.read_bytes_per_s > 1e8 and limits.matmul_flops_per_s > 1e8 and limits.threads >= 1


def test_time_interleaved_runs_in_rounds_and_ratios_pair_rounds():
    order = []
    timings = cost.time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                                    warmup=1, repeats=3)
    assert order == ["a", "b"] * 4                      # one warm-up round, then three timed rounds
    assert timings["a"].repeats == 3 and len(timings["b"].samples_ms) == 3
    num = cost.Timing(2.0, 2.0, 6.0, 3, (2.0, 4.0, 6.0))
    den = cost.Timing(2.0, 1.0, 3.0, 3, (1.0, 2.0, 3.0))
    assert cost.ratio_spread(num, den) == (2.0, 2.0, 2.0)   # paired by round: 2/1, 4/2, 6/3
    with pytest.raises(ValueError, match="same interleaved run"):
        cost.ratio_spread(num, cost.Timing(1.0, 1.0, 1.0, 1, (1.0,)))
