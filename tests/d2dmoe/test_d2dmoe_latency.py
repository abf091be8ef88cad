"""Request latency: requests of exactly n real tokens, a JSON-ready result with the FLOPs of the same runs,
machine details, and the 1-point summary."""
from __future__ import annotations

import json

import pytest
import torch

from nblib import checks, d2dmoe
from nblib.d2dmoe import latency


@pytest.fixture(scope="module")
def minilm_e24():
    """The committed MiniLM with 24 experts per FFN."""
    try:
        return d2dmoe.load_moe("minilm", 24)
    except (OSError, FileNotFoundError) as e:   # no local MiniLM folder
        pytest.skip(f"MiniLM unavailable: {e}")


@pytest.fixture(scope="module")
def reviews():
    """A few multiemo test reviews."""
    return d2dmoe.load_multiemo("test", 6)


def test_requests_are_exactly_n_real_tokens(minilm_e24, reviews):
    """Short reviews are joined, long ones truncated: n tokens, all attended, [CLS] first and [SEP] last."""
    tok = d2dmoe.models.tokenizer()
    for n in (8, 32, 128):
        reqs = latency.request_inputs(reviews, n)
        assert len(reqs) == len(reviews)
        for b in reqs:
            assert b["input_ids"].shape == (1, n) and bool(b["attention_mask"].all())
            assert b["input_ids"][0, 0] == tok.cls_token_id and b["input_ids"][0, -1] == tok.sep_token_id
            assert (b["input_ids"] != tok.pad_token_id).all()
    with pytest.raises(checks.BadArgument):
        latency.request_inputs([], 16)


def test_request_latency_is_json_ready_with_flops_of_the_same_runs(minilm_e24, reviews):
    """tau = 0 runs every expert (FLOPs ratio = 1 + router share); a high tau runs fewer; both rules refused."""
    model, layers = minilm_e24
    threads = torch.get_num_threads()
    r0 = latency.request_latency(model, layers, reviews[:2], tau=0.0, n_tokens=(16,), repeats=2, warmup=1,
                                 base_model=d2dmoe.load_base("minilm", "sparse"))
    r5 = latency.request_latency(model, layers, reviews[:2], tau=0.5, n_tokens=(16, 24), repeats=2, warmup=1)
    assert torch.get_num_threads() == threads                 # the 2-thread setting is undone
    json.dumps(r0), json.dumps(r5)
    row0 = r0["by_tokens"][0]
    assert row0["tokens"] == 16 and row0["expert_share"] == 1.0
    router = layers[0].router.flops_per_token() / layers[0].dense_flops()
    assert row0["ffn_flops_ratio"] == pytest.approx(1 + router)
    assert row0["request_ms"]["dense"]["n"] == 2 and "original" in row0["request_ms"]
    assert [r["tokens"] for r in r5["by_tokens"]] == [16, 24]
    assert all(r["ffn_flops_ratio"] < row0["ffn_flops_ratio"] for r in r5["by_tokens"])
    assert all(r["ffn_ratio"]["ratio"] > 0 for r in r5["by_tokens"])
    assert layers[0].mode == "dynk" and layers[0].tau == 0.5 and layers[0].impl == "kernel"
    with pytest.raises(checks.BadArgument):
        latency.request_latency(model, layers, reviews, tau=0.1, k=2)


def test_machine_and_summary():
    """machine() names the CPU and BLAS; summary() checks the goals at the given tau, or says it was not measured."""
    m = latency.machine(2)
    assert m["cpu"] and m["blas"] and m["threads"] == 2 and len(m["loadavg"]) == 3
    ms = {"dense": {"median": 10.0}, "moe": {"median": 9.0}}
    row = {"tokens": 64, "ffn_flops_ratio": 0.4, "ffn_ratio": {"ratio": 0.55}, "request_ratio": {"ratio": 0.9},
           "request_ms": ms, "ffn_ms": ms}
    sweep = {"n_experts": 24, "expert_size": 64, "dynk": [{"value": 0.5, "by_tokens": [row]}]}
    s = latency.summary(sweep, 0.5, 64)
    assert s["ffn_goal_met"] and not s["request_goal_met"] and s["ffn_time_ratio"] == 0.55
    assert latency.summary(sweep, 0.3, 64) == {"tau_1pt": 0.3, "tokens": 64, "measured": False}
    assert latency.table({"dynk": sweep["dynk"], "topk": []})[0]["ffn_time_ratio"] == 0.55


def test_the_shipped_record_feeds_the_panel_at_one_request_length():
    rec = latency.load_record()
    pts = latency.panel_points(rec, tokens=64)
    assert 64 in pts and all({"tau", "ffn_flops_ratio", "ffn_time_ratio", "request_ratio"} <= set(p) for p in pts[64])
    taus = [p["tau"] for p in pts[64]]
    assert 0.0 in taus and len(taus) == len(set(taus))
    assert latency.panel_points(rec, tokens=7) == {}   # no request of that length was measured
