"""Property tests (hypothesis) for KOALA's recipes on the SDXL config (a dict: no U-Net is built): any recipe
either derives a student config and layout or raises RecipeError / ValueError / TypeError naming the argument
(issue 23)."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from nblib import koala
from nblib.koala import recipes
from property_helpers import FAST, named

ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=3), st.lists(st.integers(), max_size=2), st.integers(-3, 50).map(np.int64))
SMALL = st.one_of(st.integers(-1, 12), st.integers(1, 10).map(np.int64), ANY)


@FAST
@given(depth=SMALL, drop_mid=st.one_of(st.booleans(), ANY), n_stages=st.one_of(st.just(3), SMALL))
def test_a_koala_recipe_derives_a_student_or_names_the_argument(depth, drop_mid, n_stages):
    try:
        r = koala.koala_recipe(depth, drop_mid, n_stages)
        cfg, layout = koala.derive(koala.SDXL_BASE_CONFIG, r)
    except Exception as e:  # noqa: BLE001
        assert named(e, "lowest_depth", "drop_mid", "n_stages", "depth", "stage", "DW-", "UP-"), repr(e)
    else:
        assert isinstance(cfg, dict) and isinstance(layout, koala.Layout)
        assert isinstance(drop_mid, bool) and 1 <= int(depth)


@FAST
@given(teacher=SMALL, depth=SMALL, how=st.one_of(st.sampled_from(list(recipes.LAYER_PICKS)), ANY))
def test_pick_layers_keeps_depth_distinct_teacher_layers_or_names_the_argument(teacher, depth, how):
    try:
        picked = recipes.pick_layers(teacher, depth, how)
    except Exception as e:  # noqa: BLE001
        assert named(e, "teacher_depth", "depth", "layers"), repr(e)
    else:
        assert len(picked) == len(set(picked)) == int(depth)
        assert all(0 <= i < int(teacher) for i in picked) and list(picked) == sorted(picked)
