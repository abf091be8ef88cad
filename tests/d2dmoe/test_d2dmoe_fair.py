"""The fair dynamic-k vs top-k comparison (nblib.d2dmoe.fair): calibration, accounting, the verdict's arithmetic."""
import pytest
import torch

from nblib import d2dmoe as D
from nblib.d2dmoe import fair


def _pt(rule, value, acc, flops, padded=None, correct=None):
    return {"rule": rule, "value": value, "accuracy": acc, "ffn_flops_ratio": flops,
            "ffn_flops_ratio_padded": flops if padded is None else padded,
            "correct": correct or "1" * int(acc * 10) + "0" * (10 - int(acc * 10))}


def test_gap_at_equal_flops_interpolates_and_ignores_points_outside_the_range():
    topk = [_pt("topk", 2, 0.6, 0.2), _pt("topk", 4, 0.8, 0.4)]
    dynk = [_pt("dynk", 0.5, 0.75, 0.3), _pt("dynk", 0.9, 0.5, 0.1), _pt("dynk", 0.0, 0.8, 1.02)]
    g = fair.gap_at_equal_flops(dynk, topk)
    assert g["n"] == 1 and g["mean"] == pytest.approx(5.0)      # 0.75 vs 0.70 at 30 % FLOPs
    assert fair.gap_at_equal_flops([], topk)["mean"] is None
    # the padded count is a different x axis: at 40 % padded FLOPs top-k has 0.8
    dynk_p = [_pt("dynk", 0.5, 0.75, 0.3, padded=0.4)]
    assert fair.gap_at_equal_flops(dynk_p, topk, padded=True)["mean"] == pytest.approx(-5.0)


def test_paired_nearest_pairs_by_flops_and_its_interval_is_zero_for_identical_items():
    a = [_pt("dynk", 0.3, 0.7, 0.30, correct="1110111010")]
    b = [_pt("topk", 6, 0.7, 0.29, correct="1110111010"), _pt("topk", 12, 0.9, 0.5)]
    (p,) = fair.paired_nearest(a, b)
    assert p["b_value"] == 6 and p["diff_pts"] == pytest.approx(0.0) and p["ci95"] == (0.0, 0.0)
    assert fair.paired_nearest(a, [_pt("topk", 12, 0.9, 0.5)]) == []     # nothing within max_gap


def test_per_layer_taus_hit_the_target_share_on_their_inputs():
    model, layers = D.load_moe("minilm", 24)
    tok = D.models.tokenizer()
    from nblib.d2dmoe.bench import capture_inputs

    inputs = capture_inputs("minilm", model, layers, D.load_multiemo("train", 24))
    for share in (0.2, 0.5):
        taus = fair.per_layer_taus(layers, inputs, share)
        assert len(taus) == len(layers) and all(0 <= t <= 1 for t in taus)
        with torch.no_grad():
            got = [float(D.dynamic_k_mask(m.router(x), t).float().mean()) for m, x, t in zip(layers, inputs, taus)]
        assert all(abs(g - share) < 0.03 for g in got), got
    with pytest.raises(ValueError, match="share"):
        fair.per_layer_taus(layers, inputs, 0.0)
    # a tiny sweep: the oracle at tau 0 runs every expert (= dense accuracy); padding only adds positions
    s = fair.fair_sweep(model, layers, tok, D.load_multiemo("test", 12), inputs, taus=(0.0, 0.5), ks=(3,),
                        shares=(0.3,), progress=False)
    dense = s["dense"]
    o0 = s["oracle"][0]
    assert o0["accuracy"] == dense["accuracy"] and o0["ffn_flops_ratio"] == pytest.approx(1.0)
    assert s["dynk_layer"][0]["value"] == 0.3 and len(s["dynk_layer"][0]["taus"]) == len(layers)
    assert 0 < s["real_token_share"] <= 1
    for rule in fair.RULES:
        for p in s[rule]:
            assert "ffn_flops_ratio_padded" in p and len(p["correct"]) == 12
    v = fair.verdict(s)
    assert {"dynk_minus_topk_router_unpadded", "dynk_minus_topk_oracle_padded", "saved_oracle"} <= set(v)
    assert len(s["activity"]) == len(layers) and all(a["cv"] >= 0 for a in s["activity"])


def test_padded_flops_count_every_position():
    model, layers = D.load_moe("minilm", 24)
    tok = D.models.tokenizer()
    reviews = D.load_multiemo("test", 4)
    assert fair.encode_mask(tok, reviews, 256).float().mean() < 1      # reviews shorter than 256 pieces: padding
    r = D.evaluate.evaluate_classifier(model, layers, tok, reviews, "topk", 3, max_len=256, padding="max_length")
    # top-k runs exactly k experts at every position, padded or not: both ratios are k/E plus the router
    assert r.ffn_flops_ratio == pytest.approx(r.ffn_flops_ratio_padded)
    assert r.ffn_flops_ratio == pytest.approx(3 / 24 + layers[0].router.flops_per_token() / layers[0].dense_flops())
    r = D.evaluate.evaluate_classifier(model, layers, tok, reviews, "dynk", 0.5, max_len=256, padding="max_length")
    assert r.ffn_flops_ratio != pytest.approx(r.ffn_flops_ratio_padded)   # pad positions pick their own experts
    with pytest.raises(ValueError, match="padding"):
        D.data.encode(tok, ["good."], 8, padding="max")


def test_both_flops_counts_match_what_nblib_cost_measures_on_the_grouped_path():
    """usage() over every position (the official count) and over real tokens only (ours) equal the FLOPs
    torch's counter measures when the grouped path runs on those rows."""
    from nblib.cost import measure_flops

    model, layers = D.load_moe("minilm", 24)
    layer = layers[2]
    x = torch.randn(96, layer.w_in.shape[-1], generator=torch.Generator().manual_seed(0))   # (tokens, d = 384)
    keep = torch.zeros(96, dtype=torch.bool)
    keep[:57] = True                                   # 57 real tokens, 39 pad positions
    D.set_rule([layer], "dynk", tau=0.4, impl="grouped")
    with D.recording([layer]):
        layer(x)
        _, padded = D.evaluate.usage([layer])
        _, unpadded = D.evaluate.usage([layer], keep)
    D.set_rule([layer], "dynk", tau=0.4, impl="grouped")
    _, f_all = measure_flops(layer, x)
    _, f_real = measure_flops(layer, x[keep])           # per-token rule: the real rows pick the same experts
    assert f_all == pytest.approx(padded * layer.dense_flops() * 96)
    assert f_real == pytest.approx(unpadded * layer.dense_flops() * 57)
    assert padded != pytest.approx(unpadded)
