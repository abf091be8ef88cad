"""The price lens (nblib.cost): re-pricing token counts per model under FLOPs, "as if" and provider sheets."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nblib import cost


def test_reprice_counts_input_and_output_tokens_per_model():
    sheet = cost.PriceSheet("t", "USD", (("a", 1.0), ("b", 10.0)), (("a", 2.0), ("b", 30.0)))
    out = cost.reprice({"a": (3, 4), "b": (1, 2)}, sheet)
    assert out["a"] == 3 * 1 + 4 * 2 and out["b"] == 10 + 60 and out["total"] == 11 + 70
    arr = cost.reprice({"a": (np.array([1, 2]), np.array([0, 1]))}, sheet)
    np.testing.assert_array_equal(arr["a"], [1.0, 4.0])


def test_flops_sheet_prices_every_token_at_the_model_flops():
    sheet = cost.flops_sheet({"big": 400.0, "small": 10.0})
    assert sheet.models == ("small", "big")                     # cheapest first
    assert sheet.cost("big", 2, 3) == 5 * 400.0 and sheet.ratio("small", "big") == 40.0


def test_as_if_sheet_is_two_flops_per_parameter():
    sheet = cost.as_if_sheet(["t", "m", "l"])
    assert sheet.price("l") == (140e9, 140e9) and sheet.ratio("t", "l") == pytest.approx(140.0)
    with pytest.raises(ValueError, match="one model per size"):
        cost.as_if_sheet(["t", "l"])


def test_provider_sheet_is_usd_per_token_with_its_date():
    sheet = cost.price_sheet("openai-2024-12", ["t", "m", "l"])
    assert sheet.unit == "USD" and "2024" in sheet.source
    assert sheet.price("t") == pytest.approx((0.15e-6, 0.60e-6))   # gpt-4o-mini, USD per 1M -> per token
    assert sheet.ratio("t", "l") == pytest.approx(100.0)           # o1 output / gpt-4o-mini output


def test_scaled_sheet_keeps_log_positions_and_returns_the_sheet_at_its_own_ratio():
    base = cost.flops_sheet({"t": 1.0, "m": 8.0, "l": 36.0})
    same = cost.scaled_sheet(base, 36.0)
    for m in ("t", "m", "l"):
        assert same.price(m)[1] == pytest.approx(base.price(m)[1])
    wide = cost.scaled_sheet(base, 1296.0)                        # 36 squared: every log-price doubles
    assert wide.price("m")[1] == pytest.approx(64.0) and wide.ratio("t", "l") == pytest.approx(1296.0)
    flat = cost.scaled_sheet(base, 1.0)
    assert all(flat.price(m)[1] == pytest.approx(1.0) for m in ("t", "m", "l"))


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_negative_or_non_finite_price_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="finite number >= 0"):
        cost.PriceSheet("bad", "USD", (("a", bad),), (("a", 1.0),))


def test_unknown_sheet_and_unpriced_model_are_clear_errors():
    with pytest.raises(cost.UnknownPriceSheet, match="no price sheet named 'dollars'.*flops"):
        cost.price_sheet("dollars", ["a"])
    with pytest.raises(cost.UnknownPriceSheet, match="no provider price table"):
        cost.provider_sheet(["a", "b", "c"], "acme-1999")
    sheet = cost.flops_sheet({"a": 1.0})
    with pytest.raises(KeyError, match="names no price for model 'zz'"):
        sheet.price("zz")
    with pytest.raises(KeyError, match=r"names no price for \['zz'\]"):
        cost.reprice({"zz": (1, 1)}, sheet)
    with pytest.raises(ValueError, match="ratio must be a number >= 1"):
        cost.scaled_sheet(sheet, 0.5)
