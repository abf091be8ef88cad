"""Property tests (hypothesis) for nblib.cost's public entry points: analytic FLOPs, the roofline bound, prices
and price sheets. Any input gives a valid result or a TypeError / ValueError / KeyError naming the argument
(issue 23)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nblib import checks, cost
from property_helpers import FAST, named

ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**4), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=3), st.lists(st.integers(), max_size=2), st.integers(-3, 50).map(np.int64),
                st.floats(-5, 1e4).map(np.float32))
SHAPE = cost.TransformerShape(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=128, vocab=100)


def whole_at_least(x, low: int) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= low


@FAST
@given(batch=st.one_of(st.integers(-2, 8), ANY), new=st.one_of(st.integers(-2, 64), ANY),
       past=st.one_of(st.integers(-2, 256), ANY), lp=st.one_of(st.none(), st.integers(-1, 8), ANY))
def test_transformer_flops_is_a_positive_int_or_names_the_argument(batch, new, past, lp):
    try:
        f = cost.transformer_flops(SHAPE, batch, new, past, lp)
    except Exception as e:  # noqa: BLE001
        assert named(e, "batch", "new_tokens", "past", "logits_positions"), repr(e)
    else:
        assert type(f) is int and f > 0
        assert whole_at_least(batch, 1) and whole_at_least(new, 1)
        # linear in the batch: the same call for one sequence, times batch
        assert f == int(batch) * cost.transformer_flops(SHAPE, 1, new, past, lp)


def test_transformer_flops_refuses_a_shape_that_is_not_one():
    with pytest.raises(TypeError, match="shape must be a TransformerShape"):
        cost.transformer_flops({"d_model": 64}, 1, 1)
    assert cost.transformer_flops(SHAPE, np.int64(2), np.int32(3)) == cost.transformer_flops(SHAPE, 2, 3)


@FAST
@given(values=st.dictionaries(st.sampled_from(["usd_per_hour", "usd_per_1m_prompt", "usd_per_1m_completion"]),
                              st.one_of(st.floats(-1, 100), ANY), max_size=3))
def test_prices_are_finite_and_non_negative_or_name_the_field(values):
    try:
        p = cost.Prices(**values)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, checks.BadArgument) and any(k in str(e) for k in values), repr(e)
    else:
        for k in values:
            v = getattr(p, k)
            assert v is None or (type(v) is float and math.isfinite(v) and v >= 0)


@FAST
@given(wb=st.one_of(st.floats(-1, 1e9), ANY), fpt=st.one_of(st.floats(-1, 1e9), ANY),
       batch=st.one_of(st.integers(-1, 64), ANY), kv=st.one_of(st.floats(-1, 1e6), ANY))
def test_the_decode_bound_is_the_smaller_positive_rate_or_names_the_argument(wb, fpt, batch, kv):
    limits = cost.MachineLimits(read_bytes_per_s=10e9, matmul_flops_per_s=100e9, threads=2)
    try:
        out = cost.decode_bound_tokens_per_s(limits, wb, fpt, batch, kv)
    except Exception as e:  # noqa: BLE001
        assert named(e, "weight_bytes", "flops_per_token", "batch", "kv_bytes_per_row"), repr(e)
    else:
        assert out["bound_tokens_per_s"] == min(out["memory_tokens_per_s"], out["compute_tokens_per_s"]) > 0
        assert math.isfinite(out["bound_tokens_per_s"])


@FAST
@given(name=st.one_of(st.sampled_from(list(cost.PRICE_SHEETS) + ["nope"]), ANY),
       models=st.one_of(st.lists(st.sampled_from(["tiny", "mid", "large"]), max_size=4, unique=True), ANY),
       ratio=st.one_of(st.floats(0, 1e4), ANY))
def test_price_sheets_price_every_model_or_name_the_argument(name, models, ratio):
    flops = {"tiny": 1e6, "mid": 5e6, "large": 3e7}
    try:
        sheet = cost.price_sheet(name, models, flops)
        scaled = cost.scaled_sheet(sheet, ratio)
    except Exception as e:  # noqa: BLE001
        assert named(e, "sheet", "models", "ratio", "table", "FLOPs per token", "no price"), repr(e)
    else:
        assert list(sheet.models) and set(sheet.models) == set(models)
        usage = {m: (np.int64(3), 2) for m in models}
        total = cost.reprice(usage, scaled)["total"]
        assert math.isfinite(total) and total >= 0
        outs = dict(scaled.output)
        assert max(outs.values()) / min(outs.values()) == pytest.approx(float(ratio) if len(set(
            dict(sheet.output).values())) > 1 else 1.0)


def test_reprice_names_a_model_the_sheet_does_not_price():
    sheet = cost.price_sheet("flops", ["tiny", "large"], {"tiny": 1.0, "large": 9.0})
    with pytest.raises(KeyError, match=r"names no price for \['mid'\]"):
        cost.reprice({"mid": (1, 1)}, sheet)
