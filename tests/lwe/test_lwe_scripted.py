"""Scripted judges (simulations) with a controlled inconsistency rate r, run through the real nblib.lwe code."""
import pytest

from nblib import checks, lwe
from nblib.lwe import scripted


@pytest.fixture(scope="module")
def cases80():
    return lwe.stream(lwe.load("hhh"), n=80)


@pytest.mark.parametrize("b", [1, 2, 4, 8])
def test_selective_calls_per_case_match_the_formula_for_every_scripted_r(cases80, b):
    # 80 cases: round(r * 80) is a multiple of 8 for every r of the grid, so the updates come out whole
    df = scripted.sweep(cases80, batch_sizes=(b,))
    sel = df[df.method == "selective"]
    assert list(sel.r) == list(scripted.R_GRID)
    assert (sel.measured_r == sel.r).all()
    for _, row in sel.iterrows():
        assert row.calls_per_case == pytest.approx(2 + row.r * (3 + 1 / b), abs=1e-12)
    lwe_rows = df[df.method == "lwe"]
    assert all(x == pytest.approx(5 + 1 / b) for x in lwe_rows.calls_per_case)


@pytest.mark.parametrize("r", [0.0, 0.35, 1.0])
def test_selective_calls_match_the_exact_count_when_updates_do_not_divide(r):
    cases = lwe.stream(lwe.load("hhh"), n=23)
    judge = scripted.ScriptedJudge(cases, r)
    rec = lwe.run("selective", judge, cases, lwe.JudgeConfig(batch_size=4))
    k = round(r * 23)
    assert sum(row["used_lwe"] for row in rec.cases) == k
    assert rec.generations() == lwe.expected_calls("selective", 23, 4, inconsistent=k) == judge.calls


def test_scripted_judge_is_inconsistent_exactly_where_scripted(cases80):
    judge = scripted.ScriptedJudge(cases80, 0.3, accuracy=1.0)
    rec = lwe.run("vanilla", judge, cases80)
    bad = {r["id"] for r in rec.cases if r["swap_verdict"] != lwe.flip(r["verdict"])}
    assert bad == judge.inconsistent and len(bad) == 24
    # accuracy 1: every consistent case is right, in both orders
    assert all(r["verdict"] == r["better"] for r in rec.cases if r["id"] not in bad)


def test_debiased_gate_on_a_scripted_judge_finds_the_scripted_cases(cases80):
    judge = scripted.ScriptedJudge(cases80, 0.4)
    rec = lwe.run("selective", judge, cases80, lwe.JudgeConfig(gate="debiased"))
    assert rec.config["position_prior"] == pytest.approx(judge.bias)      # the content-free prior is the bias
    assert {r["id"] for r in rec.cases if r["used_lwe"]} == judge.inconsistent
    assert rec.calls_per_case() == pytest.approx(2 + 0.4 * (3 + 1 / 4))
    assert rec.calls["check"] == 2 * len(cases80) and rec.calls["calibrate"] == len(lwe.debias.CONTENT_FREE)


@pytest.mark.parametrize("r", [-0.1, 1.5, float("nan"), "0.5"])
def test_r_outside_0_1_is_one_clear_error(cases80, r):
    with pytest.raises(checks.BadArgument, match=r"r must be a number >= 0 and <= 1|r must be a number"):
        scripted.ScriptedJudge(cases80, r)
    with pytest.raises(checks.BadArgument, match="r must be a number"):
        scripted.sweep(cases80, rs=[0.5, r])
    with pytest.raises(checks.BadArgument, match="r must be a number"):
        lwe.formula_calls_per_case("selective", 4, r)


def test_an_unknown_prompt_gets_no_verdict_and_is_recorded(cases80):
    judge = scripted.ScriptedJudge(cases80[:10], 0.5)
    rec = lwe.run("vanilla", judge, cases80[10:12])       # cases the script does not know
    assert rec.status == "complete"
    assert all(r["outcome"] == "unparseable" and r["verdict_from"] == "logprob" for r in rec.cases)
