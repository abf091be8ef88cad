"""Task world v2's difficulty levels: a mix of named levels with disjoint step counts."""
from __future__ import annotations

import collections

import pytest

from nblib import taskworld
from nblib.taskworld import problems as T

MIX = T.V2_MIX


def test_levels_are_named_disjoint_and_cover_2_to_8_steps():
    assert MIX.names == ("easy", "medium", "hard")
    assert (MIX.min_steps, MIX.max_steps, MIX.max_value) == (2, 8, 999)
    assert [MIX.level_of(k) for k in range(2, 9)] == ["easy"] * 2 + ["medium"] * 2 + ["hard"] * 3


def test_mix_problems_follow_their_level():
    probs = T.problems("test", 400, seed=0, cfg=MIX)
    assert len({p.text for p in probs}) == 400 and all(T.split_of(p) == "test" for p in probs)
    counts = collections.Counter(MIX.level_of(p) for p in probs)
    assert set(counts) == set(MIX.names) and counts["easy"] > counts["hard"]     # weights 0.40 / 0.35 / 0.25
    for p in probs:
        cfg = MIX.level(MIX.level_of(p))
        assert p.in_range(cfg.max_value) and cfg.min_steps <= p.n_steps <= cfg.max_steps
    easy = [p for p in probs if MIX.level_of(p) == "easy"]
    assert all("*" not in p.kinds for p in easy)                                 # easy: + and - only
    assert any(max(p.values) > 99 for p in probs if MIX.level_of(p) == "hard")   # hard: three-digit totals


def test_mix_is_deterministic_and_n_steps_picks_the_level():
    assert [p.text for p in T.problems("val", 20, 3, MIX)] == [p.text for p in T.problems("val", 20, 3, MIX)]
    assert [p.text for p in T.problems("val", 20, 3, MIX)] != [p.text for p in T.problems("val", 20, 4, MIX)]
    hard = T.problems("test", 30, 0, MIX, n_steps=7)
    assert all(p.n_steps == 7 for p in hard) and any(max(p.values) > 99 for p in hard)


def test_unknown_level_and_bad_mixes_are_clear_errors():
    with pytest.raises(T.UnknownLevel, match="no difficulty level named 'expert'; levels are"):
        MIX.level("expert")
    with pytest.raises(T.UnknownLevel, match="fits no level"):
        MIX.level_of(12)
    c = T.TaskConfig(min_steps=2, max_steps=4)
    with pytest.raises(ValueError, match="share step counts"):
        T.TaskMix((("a", c, 1.0), ("b", T.TaskConfig(min_steps=4, max_steps=6), 1.0)))
    with pytest.raises(ValueError, match="distinct"):
        T.TaskMix((("a", c, 1.0), ("a", T.TaskConfig(min_steps=5, max_steps=6), 1.0)))
    with pytest.raises(ValueError, match="weights"):
        T.TaskMix((("a", c, -1.0),))


def test_v2_models_default_to_the_mix_and_v1_models_to_the_old_config(monkeypatch):
    info = {"spec": {"task": taskworld.training.to_plain(MIX)}}
    monkeypatch.setattr(taskworld.models, "model_info", lambda name, root=None: info)
    assert taskworld.models.default_task("any-v2") is MIX
    info["spec"]["task"] = taskworld.training.to_plain(T.TaskConfig())
    assert taskworld.models.default_task("any-v1") == T.TaskConfig()


def test_solve_leaves_room_for_long_solutions():
    long = T.problems("test", 5, 0, MIX, n_steps=8)
    assert max(len(p.solution) for p in long) + 16 > 80      # the old fixed 80 tokens could cut these short


def test_fine_kinds_split_add_and_sub_by_operand_digits():
    from nblib.taskworld.metrics import FINE_KINDS, fine_kind

    assert [fine_kind("+", 7), fine_kind("+", 12), fine_kind("-", 0), fine_kind("-", 99), fine_kind("*", 3)] == [
        "add 1-digit", "add 2-digit", "sub 1-digit", "sub 2-digit", "mul"]
    assert set(FINE_KINDS) == {fine_kind(op, x) for op in T.OPS for x in (1, 50)}
