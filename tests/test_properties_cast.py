"""Property tests (hypothesis) for CAST's pure entry points (no model): fixed trees and chains, and Algorithm 1's
marginal selection. Any input gives a valid policy or choice, or a ValueError / TypeError naming the argument
(issue 23)."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from nblib import cast
from property_helpers import FAST, named

ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=3), st.lists(st.integers(), max_size=2), st.integers(-3, 50).map(np.int64))
SMALL = st.one_of(st.integers(-2, 40), st.integers(1, 20).map(np.int64), ANY)


@FAST
@given(depth=SMALL, top_k=SMALL, budget=SMALL)
def test_a_fixed_tree_holds_positive_ints_or_names_the_argument(depth, top_k, budget):
    try:
        t = cast.FixedTree(depth, top_k, budget)
    except Exception as e:  # noqa: BLE001
        assert named(e, "depth", "top_k", "budget"), repr(e)
    else:
        assert all(type(v) is int and v >= 1 for v in (t.depth, t.top_k, t.budget))
        assert (t.depth, t.top_k, t.budget) == (depth, top_k, budget)
        assert t.depth <= cast.tree.MAX_TREE_DEPTH


@FAST
@given(depth=SMALL)
def test_a_chain_is_one_candidate_per_level_or_names_depth(depth):
    try:
        t = cast.chain(depth)
    except Exception as e:  # noqa: BLE001
        assert named(e, "depth"), repr(e)
    else:
        assert t.top_k == 1 and t.budget == t.depth == depth


@FAST
@given(u=st.one_of(st.lists(st.floats(0, 10), min_size=0, max_size=6), st.lists(st.floats(allow_nan=True),
                                                                                  max_size=3), ANY),
       c=st.one_of(st.lists(st.floats(0, 10), min_size=0, max_size=6), ANY),
       threshold=st.one_of(st.floats(0, 5), st.floats(allow_nan=True, allow_infinity=True), ANY))
def test_marginal_select_keeps_between_one_and_all_items_or_names_the_argument(u, c, threshold):
    try:
        k = cast.policy.marginal_select(u, c, threshold)
    except Exception as e:  # noqa: BLE001
        assert named(e, "u and c", "threshold"), repr(e)
    else:
        assert 1 <= k <= len(u)


def test_marginal_select_at_threshold_zero_keeps_everything_that_adds_utility():
    assert cast.policy.marginal_select([1, 2, 3], [1, 2, 3], 0.0) == 3
    assert cast.policy.marginal_select([1, 2, 3], [1, 2, 3], 10.0) == 1
