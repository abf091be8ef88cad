"""Property tests (hypothesis) for nblib.measuring's analytic entry points (no model is timed): the KV-cache size
is linear in batch and tokens, or a clear error names the argument (issue 23)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nblib import cost, measuring

FAST = settings(max_examples=50, deadline=None)
ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=3), st.lists(st.integers(), max_size=2), st.integers(-3, 50).map(np.int64))
SHAPE = cost.TransformerShape(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=128, vocab=100)


@FAST
@given(batch=st.one_of(st.integers(-1, 16), ANY), tokens=st.one_of(st.integers(-1, 512), ANY),
       bytes_per=st.one_of(st.sampled_from([1, 2, 4]), ANY))
def test_kv_cache_mb_is_linear_or_names_the_argument(batch, tokens, bytes_per):
    try:
        mb = measuring.kv_cache_mb(SHAPE, batch, tokens, bytes_per)
    except ValueError as e:
        assert any(n in str(e) for n in ("batch", "tokens", "bytes_per")), repr(e)
    else:
        assert math.isfinite(mb) and mb >= 0
        assert mb == pytest.approx(2 * 2 * 2 * 16 * int(tokens) * int(batch) * int(bytes_per) / 1e6)


def test_kv_cache_mb_refuses_sizes_given_as_huge_floats():
    """A CI run's Hypothesis draw (batch = tokens = 1.185e153) overflowed the float division: one clear error."""
    with pytest.raises(ValueError, match="batch"):
        measuring.kv_cache_mb(SHAPE, 1.185093988513647e+153, 1.1850939885136472e+153, 1)


def test_kv_cache_mb_refuses_a_shape_that_is_not_one():
    with pytest.raises(TypeError, match="shape must be a cost.TransformerShape"):
        measuring.kv_cache_mb({"n_layers": 2}, 1, 8)


@pytest.mark.parametrize("batch_sizes, seq_lens", [((), (8,)), ((1,), ()), ((0,), (8,)), ((1,), (-4,))])
def test_run_sweep_refuses_an_empty_or_non_positive_grid(batch_sizes, seq_lens, tiny_model):
    cfg = measuring.SweepConfig("tiny", batch_sizes, seq_lens, decode_steps=1, repeats=1)
    with pytest.raises(ValueError, match="batch|seq|empty"):
        measuring.run_sweep(tiny_model, cfg)
