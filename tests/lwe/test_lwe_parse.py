"""Verdict parsing by the official rules, and the self-feedback reader."""
import pytest

from nblib.lwe import flip, parse
from nblib.lwe.parse import parse_feedback


@pytest.mark.parametrize("text,verdict", [
    ("A is better. [[A]]", "A"), ("[[B]]", "B"), ("first [[A]] then [[B]]", None),   # both: invalid
    ("verdict [A]", "A"), ("[B] wins", "B"), ("[A] or [B]", None), ("no verdict here", None), ("", None),
    (None, None), ("[[A]] and a stray [B]", "A"),                                     # double brackets win
])
def test_parse_verdict_follows_the_official_rules(text, verdict):
    assert parse.parse_verdict(text) == verdict


def test_flip():
    assert flip("A") == "B" and flip("B") == "A" and flip(None) is None


def test_feedback_dict_is_read_and_raw_text_kept():
    fb = parse_feedback("Here: {'score': 4, 'label': 'absolutely confident', 'learned tips': ['x'], 'reasoning': 'r'}")
    assert fb["score"] == 4 and fb["label"] == "absolutely confident" and fb["learned tips"] == ["x"]
    loose = parse_feedback("I am not sure this is right")
    assert loose["label"] == "not sure" and loose["raw"].startswith("I am")
    assert parse_feedback("")["label"] is None
