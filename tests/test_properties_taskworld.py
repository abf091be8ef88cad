"""Property tests (hypothesis) for the task world's pure entry points (no model is loaded): encode / decode
round-trip, problem parsing, and clear errors naming the argument for anything else (issue 23)."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from nblib import taskworld
from nblib.taskworld import models
from property_helpers import FAST, named

ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=5), st.lists(st.integers(-3, 40), max_size=4), st.integers(-3, 50).map(np.int64))
TASK_TEXT = st.text(alphabet=models.CHARS, max_size=12)


@FAST
@given(st.one_of(TASK_TEXT, ANY))
def test_encode_round_trips_task_text_or_names_the_character(text):
    try:
        ids = taskworld.encode(text)
    except taskworld.MalformedProblem as e:
        assert "text must be a string" in str(e) or "not in the task vocabulary" in str(e)
    else:
        assert ids[0] == models.BOS and taskworld.decode(ids) == text


@FAST
@given(st.one_of(st.lists(st.one_of(st.integers(-2, len(models.VOCAB) + 2), st.integers(0, 9).map(np.int64)),
                          max_size=6), ANY))
def test_decode_takes_vocabulary_ids_only_or_names_ids(ids):
    try:
        out = taskworld.decode(ids)
    except Exception as e:  # noqa: BLE001
        assert named(e, "ids"), repr(e)
    else:
        assert isinstance(out, str) and len(out) <= len(list(ids))


@FAST
@given(st.one_of(st.from_regex(r"\A\d{1,2}(,[+\-*]\d{1,2}){0,3}\Z"), ANY))
def test_parse_problem_gives_a_problem_or_says_why_not(text):
    try:
        p = taskworld.parse_problem(text)
    except taskworld.MalformedProblem as e:
        assert str(e)
    else:
        assert isinstance(p, taskworld.Problem) and taskworld.parse_problem(p.text) == p
