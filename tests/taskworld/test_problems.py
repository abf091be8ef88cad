"""The task world's generator, checkers, splits and the committed BIG-bench subset."""
from __future__ import annotations

import collections

import pytest

from nblib import taskworld


def test_problem_and_gold_solution():
    p = taskworld.parse_problem("47,+8,*2,-15")
    assert p == taskworld.Problem(47, (("+", 8), ("*", 2), ("-", 15)))
    assert p.values == [47, 55, 110, 95]
    assert p.step_lines == ["47+8=55", "55*2=110", "110-15=95"]
    assert p.solution == "47+8=55\n55*2=110\n110-15=95\n#95"
    assert p.kinds == ["+", "*", "-"] and p.answer == 95 and p.n_steps == 3
    assert taskworld.parse_problem(p.text) == p


@pytest.mark.parametrize("bad, why", [
    ("", "at least one operation"),
    ("47", "at least one operation"),
    ("47,8", "'8' is not an operator"),
    ("47,+8,/2", "'/2' is not an operator"),
    ("x,+8", "start 'x'"),
    ("47,+08", "'+08'"),
    ("47,,+8", "'' is not an operator"),
])
def test_malformed_problem_says_why(bad, why):
    with pytest.raises(taskworld.MalformedProblem, match="malformed problem") as e:
        taskworld.parse_problem(bad)
    assert why in str(e.value)


def test_malformed_problem_objects():
    with pytest.raises(taskworld.MalformedProblem):
        taskworld.Problem(-1, (("+", 1),))
    with pytest.raises(taskworld.MalformedProblem):
        taskworld.Problem(1, ())
    with pytest.raises(taskworld.MalformedProblem):
        taskworld.Problem(1, (("/", 2),))
    with pytest.raises(taskworld.MalformedProblem):
        taskworld.parse_problem(47)


def test_step_checker_separates_copy_and_arithmetic_errors():
    p = taskworld.parse_problem("47,+8,*2")
    assert taskworld.problems.check_step(p, 0, "47+8=55").valid and taskworld.problems.check_step(p, 0, "47+8=55").gold
    bad_sum = taskworld.problems.check_step(p, 0, "47+8=56")
    assert bad_sum.well_formed and bad_sum.copies_ok and not bad_sum.arithmetic_ok and not bad_sum.valid
    bad_copy = taskworld.problems.check_step(p, 0, "47+9=56")
    assert bad_copy.arithmetic_ok and not bad_copy.copies_ok
    garbage = taskworld.problems.check_step(p, 1, "55**2")
    assert not garbage.well_formed and not garbage.valid
    # a step that carries an earlier error forward is locally valid but not gold
    carried = taskworld.problems.check_step(p, 1, "56*2=112", prev_value=56)
    assert carried.valid and not carried.gold
    with pytest.raises(IndexError):
        taskworld.problems.check_step(p, 2, "1+1=2")


def test_answer_and_solution_checkers():
    p = taskworld.parse_problem("47,+8,*2")
    assert taskworld.problems.check_answer(p, p.solution)
    assert not taskworld.problems.check_answer(p, "47+8=55\n55*2=110\n#111")
    assert not taskworld.problems.check_answer(p, "47+8=55\n55*2=110")  # no answer line
    checks = taskworld.problems.check_solution(p, "47+8=56\n56*2=112\n#112")
    assert [c.valid for c in checks] == [False, True] and [c.gold for c in checks] == [False, False]
    assert taskworld.problems.parse_solution(p.solution) == (p.step_lines, 110)


def test_generator_is_seeded_and_in_range():
    a = taskworld.problems.problems("test", 200, seed=3)
    b = taskworld.problems.problems("test", 200, seed=3)
    c = taskworld.problems.problems("test", 200, seed=4)
    assert [p.text for p in a] == [p.text for p in b]
    assert [p.text for p in a] != [p.text for p in c]
    assert len({p.text for p in a}) == 200  # distinct
    assert all(p.in_range(99) and 2 <= p.n_steps <= 6 for p in a)
    assert all(taskworld.parse_problem(p.text) == p for p in a)


def test_splits_are_disjoint_and_sized():
    train = {p.text for p in taskworld.problems.problems("train", 3000)}
    val = {p.text for p in taskworld.problems.problems("val", 500)}
    test = {p.text for p in taskworld.problems.problems("test", 500)}
    assert not (train & test) and not (train & val) and not (val & test)
    assert all(taskworld.problems.split_of(t) == "test" for t in test)
    # the buckets are about 80/10/10 over the raw stream
    import random

    rng = random.Random(0)
    counts = collections.Counter(taskworld.problems.split_of(taskworld.problems.sample_problem(rng)) for _ in range(4000))
    assert 0.75 < counts["train"] / 4000 < 0.85 and 0.07 < counts["test"] / 4000 < 0.13
    with pytest.raises(ValueError, match="unknown split"):
        taskworld.problems.problems("dev", 3)


def test_difficulty_knobs():
    few = taskworld.problems.problems("test", 100, cfg=taskworld.TaskConfig(min_steps=2, max_steps=2))
    assert all(p.n_steps == 2 for p in few)
    assert all(p.n_steps == 4 for p in taskworld.problems.problems("test", 50, n_steps=4))
    big = taskworld.problems.problems("test", 200, cfg=taskworld.TaskConfig(max_value=999, max_addend=999))
    assert max(p.answer for p in big) > 99 and all(p.in_range(999) for p in big)
    adds = taskworld.problems.problems("test", 200, cfg=taskworld.TaskConfig.mostly("+", share=1.0))
    kinds = collections.Counter(k for p in adds for k in p.kinds)
    assert kinds["+"] / sum(kinds.values()) > 0.8  # others only where + cannot fit (total at 99)
    with pytest.raises(ValueError):
        taskworld.TaskConfig(min_steps=3, max_steps=2)
    with pytest.raises(ValueError):
        taskworld.TaskConfig(op_weights=(("/", 1.0),))


def test_bigbench_subset_is_committed_and_consistent():
    items = taskworld.load_bigbench()
    assert len(items) >= 300
    tasks = collections.Counter(it.task for it in items)
    assert tasks["elementary_math_qa/question_with_mathematical_hint"] >= 100
    assert sum(v for k, v in tasks.items() if k.startswith("arithmetic/")) >= 200
    for it in items:
        assert str(it.problem.answer) == it.original_target or float(it.original_target) == it.problem.answer
        assert it.problem.in_range(99)
    assert max(it.problem.n_steps for it in items) >= 3  # multi-step items from the hint formulas


def test_bigbench_missing_file_says_how_to_rebuild(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_bigbench_subset.py"):
        taskworld.load_bigbench(tmp_path / "nope.jsonl")


def test_an_exhausted_config_is_a_clear_error_not_a_hang():
    import time

    t0 = time.perf_counter()
    with pytest.raises(taskworld.problems.ProblemsExhausted, match=r"found only \d+ distinct test problems") as e:
        taskworld.problems.problems("test", 50, cfg=taskworld.TaskConfig(1, 1, 3, 3, 2))
    assert "50 were asked for" in str(e.value) and "widen the config" in str(e.value)
    assert isinstance(e.value, RuntimeError)
    assert time.perf_counter() - t0 < 10
    with pytest.raises(taskworld.problems.ProblemsExhausted, match="n_steps=1"):
        taskworld.problems.problems("test", 5000, n_steps=1)
    endless = taskworld.problems.iter_problems("test", cfg=taskworld.TaskConfig(1, 1, 3, 3, 2))
    with pytest.raises(taskworld.problems.ProblemsExhausted, match="used up"):
        list(endless)


def test_the_real_configs_never_hit_the_bound():
    import time

    t0 = time.perf_counter()
    for cfg in (taskworld.TaskConfig(), *(taskworld.TaskConfig.mostly(op) for op in taskworld.problems.OPS)):
        ps = taskworld.problems.problems("test", 2000, cfg=cfg)
        assert len({p.text for p in ps}) == 2000
    assert time.perf_counter() - t0 < 30
    stream = taskworld.problems.iter_problems("train", distinct=False)
    assert len([next(stream) for _ in range(3000)]) == 3000
