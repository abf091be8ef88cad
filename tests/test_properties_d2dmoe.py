"""Property tests (hypothesis) for D2DMoE's routing rules and expert split on small random tensors (no model):
any input gives a valid mask or size, or a ValueError / TypeError naming the argument (issue 23)."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from nblib import d2dmoe
from property_helpers import FAST, named

ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=3), st.lists(st.integers(), max_size=2), st.integers(-3, 50).map(np.int64),
                st.floats(-1, 2).map(np.float32))


def preds(n: int, e: int, seed: int) -> torch.Tensor:
    return torch.rand(n, e, generator=torch.Generator().manual_seed(seed))


@FAST
@given(n=st.integers(1, 5), e=st.integers(1, 8), seed=st.integers(0, 99),
       tau=st.one_of(st.floats(-0.5, 1.5), ANY))
def test_dynamic_k_keeps_every_expert_above_tau_times_the_max_or_names_tau(n, e, seed, tau):
    pred = preds(n, e, seed)
    try:
        mask = d2dmoe.dynamic_k_mask(pred, tau)
    except Exception as e_:  # noqa: BLE001
        assert named(e_, "tau"), repr(e_)
    else:
        want = pred >= float(tau) * pred.max(-1, keepdim=True).values
        assert torch.equal(mask, want) and mask.any(-1).all()          # never empty; tau 0 = all experts
        if float(tau) == 0:
            assert mask.all()


@FAST
@given(n=st.integers(1, 5), e=st.integers(1, 8), seed=st.integers(0, 99), k=st.one_of(st.integers(-1, 10), ANY))
def test_topk_runs_exactly_k_experts_or_names_k(n, e, seed, k):
    try:
        mask = d2dmoe.topk_mask(preds(n, e, seed), k)
    except Exception as e_:  # noqa: BLE001
        assert named(e_, "k"), repr(e_)
    else:
        assert (mask.sum(-1) == int(k)).all()


@FAST
@given(pred=ANY)
def test_the_masks_refuse_what_is_not_a_prediction_tensor(pred):
    for fn, arg in ((d2dmoe.dynamic_k_mask, 0.5), (d2dmoe.topk_mask, 1)):
        try:
            fn(pred, arg)
        except Exception as e:  # noqa: BLE001
            assert named(e, "pred"), repr(e)
        else:
            raise AssertionError(f"{fn.__name__} accepted {pred!r}")


@FAST
@given(d_ff=st.one_of(st.integers(-2, 512), ANY), n=st.one_of(st.integers(-2, 64), ANY))
def test_the_expert_count_divides_the_ffn_width_or_names_the_argument(d_ff, n):
    try:
        size = d2dmoe.check_expert_count(d_ff, n)
    except Exception as e:  # noqa: BLE001
        assert named(e, "n_experts", "d_ff", "experts do not divide"), repr(e)
    else:
        assert size * int(n) == int(d_ff) and size >= 1
