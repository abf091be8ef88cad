"""The four judges on a scripted backend: call counts, formulas, the selective gate, the 726-character rule."""
import math

import pytest

from nblib import lwe
from nblib.lwe import prompts


def _gen_calls(fake):
    return len(fake.calls)


@pytest.mark.parametrize("method", lwe.METHODS)
def test_call_counter_matches_the_calls_made(scripted, cases, method):
    fake = scripted(judge="always_a")
    rec = lwe.run(method, fake, cases)
    assert rec.generations() == _gen_calls(fake)
    assert rec.calls.get("score", 0) == len(fake.scores)
    by_role = {}
    for role, _ in fake.calls:
        by_role[{"vanilla": "judge"}.get(role, role)] = by_role.get({"vanilla": "judge"}.get(role, role), 0) + 1
    assert {k: v for k, v in rec.calls.items() if k != "score"} == by_role
    assert rec.n == len(cases) and rec.status == "complete"


@pytest.mark.parametrize("b", [1, 2, 4])
def test_lwe_calls_per_case_match_the_formula(scripted, b):
    cases = lwe.stream(lwe.load("hhh"), n=8)
    for run_swap, base in ((True, 5), (False, 3)):
        rec = lwe.run("lwe", scripted(), cases, lwe.JudgeConfig(batch_size=b, run_swap=run_swap))
        assert rec.calls_per_case() == pytest.approx(base + 1 / b)
        assert rec.calls_per_case() == pytest.approx(lwe.formula_calls_per_case("lwe", b, run_swap=run_swap))
        assert rec.calls["update"] == 8 // b
    assert lwe.run("vanilla", scripted(), cases).calls_per_case() == 2
    assert lwe.run("ssp", scripted(), cases).calls_per_case() == 4


def test_partial_last_batch_still_updates(scripted):
    cases = lwe.stream(lwe.load("hhh"), n=10)
    rec = lwe.run("lwe", scripted(), cases, lwe.JudgeConfig(batch_size=4))
    assert rec.calls["update"] == 3 == math.ceil(10 / 4)
    assert rec.generations() == lwe.expected_calls("lwe", 10, 4)


def _mixed_judge(inconsistent_ids, answers):
    """Swap-consistent (longer answer wins) except on the listed questions, where it always says A."""
    def judge(messages):
        content = messages[-1]["content"]
        if any(q in content for q in inconsistent_ids):
            return "[[A]]"
        a = answers(messages)
        return "[[A]]" if len(a.get("A", "")) > len(a.get("B", "")) else "[[B]]"
    return judge


def _distinct_length_cases(n):
    """Cases whose two answers differ in clipped length, so the 'longer' judge is truly swap-consistent."""
    out = [c for c in lwe.stream(lwe.load("hhh"))
           if len(prompts.clip(c.output1, 600)) != len(prompts.clip(c.output2, 600))]
    return out[:n]


def test_selective_on_consistent_judge_is_vanilla_with_no_update(scripted):
    cases = _distinct_length_cases(12)
    fake = scripted(judge="longer")
    sel = lwe.run("selective", fake, cases)
    van = lwe.run("vanilla", scripted(judge="longer"), cases)
    assert [r["verdict"] for r in sel.cases] == [r["verdict"] for r in van.cases]
    assert fake.n_updates == 0 and sel.calls.get("update", 0) == 0
    assert [h["reason"] for h in sel.meta_history] == ["initial"]
    assert sel.generations() == 2 * len(cases) and sel.calls_per_case() == 2.0
    assert not any(r["used_lwe"] for r in sel.cases)


def test_selective_learns_only_from_inconsistent_cases_and_matches_the_formula(scripted, answers_of):
    cases = _distinct_length_cases(12)
    bad = [cases[i] for i in (1, 2, 5, 7, 8, 11, 3, 0)]           # 8 inconsistent cases, B = 4 -> 2 updates
    fake = scripted(judge=_mixed_judge([c.question[:60] for c in bad], answers_of))
    rec = lwe.run("selective", fake, cases, lwe.JudgeConfig(batch_size=4))
    used = {r["id"] for r in rec.cases if r["used_lwe"]}
    assert used == {c.id for c in bad}
    updated_from = [i for h in rec.meta_history[1:] for i in h["batch"]]
    assert set(updated_from) == used and len(updated_from) == len(used)   # each inconsistent case once, no other
    k, n, b = len(bad), len(cases), 4
    assert rec.generations() == lwe.expected_calls("selective", n, b, inconsistent=k) == 2 * n + 3 * k + 2
    assert rec.calls_per_case() == pytest.approx(lwe.formula_calls_per_case("selective", b, r=k / n))
    # the consistent cases cost exactly the two vanilla calls
    consistent_calls = [role for role, m in fake.calls if role != "vanilla"]
    assert len(consistent_calls) == 3 * k + 2


def test_always_inconsistent_selective_equals_lwe_without_swap(scripted):
    cases = lwe.stream(lwe.load("hhh"), n=12)
    sel = lwe.run("selective", scripted(judge="always_a"), cases)
    lwe_ns = lwe.run("lwe", scripted(judge="always_a"), cases, lwe.JudgeConfig(run_swap=False))
    assert [r["verdict"] for r in sel.cases] == [r["verdict"] for r in lwe_ns.cases]
    assert [h["text"] for h in sel.meta_history] == [h["text"] for h in lwe_ns.meta_history]
    n = len(cases)
    assert sel.generations() == 2 * n + 3 * n + math.ceil(n / 4)


def test_rejected_rewrite_leaves_the_meta_prompt_unchanged(scripted):
    cases = lwe.stream(lwe.load("hhh"), n=8)
    fake = scripted(update_chars=725)                       # one character short of the rule
    rec = lwe.run("lwe", fake, cases)
    assert fake.n_updates == 2
    assert all(not h["accepted"] and h["text"] == prompts.INITIAL_META_PROMPT for h in rec.meta_history[1:])
    assert all(h["version"] == 0 and "725 < 726" in h["reason"] for h in rec.meta_history[1:])
    rubric_prompts = [m[-1]["content"] for role, m in fake.calls if role == "rubric"]
    assert all(p.startswith(prompts.INITIAL_META_PROMPT) for p in rubric_prompts)
    # at exactly 726 characters the rewrite is accepted and the next batch uses it
    fake = scripted(update_chars=726)
    rec = lwe.run("lwe", fake, cases)
    assert [h["version"] for h in rec.meta_history] == [0, 1, 2]
    new_meta = rec.meta_history[1]["text"]
    later = [m[-1]["content"] for role, m in fake.calls if role == "rubric"][8:]   # batch 2: 4 cases x 2 orders
    assert later and all(p.startswith(new_meta) for p in later)
    assert [r["meta_version"] for r in rec.cases] == [0] * 4 + [1] * 4


def test_ssp_never_updates(scripted, cases):
    fake = scripted()
    rec = lwe.run("ssp", fake, cases)
    assert fake.n_updates == 0 and len(rec.meta_history) == 1
    assert all(m[-1]["content"].startswith(prompts.INITIAL_META_PROMPT) for role, m in fake.calls if role == "rubric")


def test_labels_never_reach_a_prompt(scripted, cases):
    flipped = [lwe.Case(c.id, c.question, c.output1, c.output2, "B" if c.better == "A" else "A") for c in cases]
    for method in ("lwe", "selective"):
        a, b = scripted(judge="always_a"), scripted(judge="always_a")
        ra, rb = lwe.run(method, a, cases), lwe.run(method, b, flipped)
        assert a.calls == b.calls
        assert [r["verdict"] for r in ra.cases] == [r["verdict"] for r in rb.cases]
        assert [h["text"] for h in ra.meta_history] == [h["text"] for h in rb.meta_history]


def test_prefix_of_the_stream_gives_the_same_outputs(scripted):
    cases = lwe.stream(lwe.load("hhh"), n=12)
    full = lwe.run("lwe", scripted(judge="always_a"), cases)
    cut = lwe.run("lwe", scripted(judge="always_a"), cases[:8])
    assert [r["verdict"] for r in cut.cases] == [r["verdict"] for r in full.cases[:8]]
    assert [h["text"] for h in cut.meta_history] == [h["text"] for h in full.meta_history[:3]]


def test_bad_inputs_are_clear_errors(scripted, cases):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        lwe.JudgeConfig(batch_size=0)
    with pytest.raises(ValueError, match="judge_tokens"):
        lwe.JudgeConfig(judge_tokens=0)
    with pytest.raises(ValueError, match="unknown method"):
        lwe.run("best", scripted(), cases)
    with pytest.raises(ValueError, match="no cases"):
        lwe.run("lwe", scripted(), [])
    with pytest.raises(ValueError, match="inconsistent"):
        lwe.expected_calls("selective", 4)
