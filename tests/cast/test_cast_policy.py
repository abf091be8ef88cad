"""CAST's cost model and policy (nblib.cast_cost): Theorem 4.1 reduction to EAGLE-2, monotonicity, profiles, lossless."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nblib import cast
from nblib.cast import policy


def sorted_scores(B: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lp = torch.log(torch.rand(B, n, generator=g) * 0.9 + 0.05)
    return lp.sort(dim=1, descending=True).values  # (B, n) distinct cumulative log-probs, descending


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("K", [1, 3, 5, 8])
def test_linear_cost_keeps_exactly_top_k_per_level(B, K):
    """Theorem 4.1: with cost lam*k + delta and C1 = mean_j v_j(K) / lam, breadth pruning keeps the top K (EAGLE-2)."""
    lam, delta = 0.004, 0.02
    prof = cast.linear_profile(B, lam=0.05, delta=0.01, draft_lam=lam, draft_delta=delta)
    for seed in range(5):
        sc = sorted_scores(B, 12, seed)
        unit = prof.target(0, 1)
        c1 = float(sc[:, K - 1].exp().mean()) / (lam / unit)
        pol = cast.CastPolicy(prof, c1=c1, c2=0.0, top_k=12, max_depth=6)
        info = cast.tree.LevelInfo(level=1, scores=sc, context=100, batch=B)
        assert pol.width(info) == K
        # with C2 -> 0 the depth rule never stops before max_depth (EAGLE-2's fixed depth)
        assert all(pol.go_deeper(level, sc[:, :K], info) for level in range(1, 6))
        assert not pol.go_deeper(6, sc[:, :K], info)


@pytest.mark.parametrize("m", [1, 4, 10])
def test_linear_cost_verify_count_is_a_fixed_budget(m):
    """The reranking rule with a linear target cost and C3 = mean v(m) / lam verifies exactly m nodes."""
    lam = 0.01
    prof = cast.linear_profile(2, lam=lam, delta=0.05)
    sc = sorted_scores(2, 30, 7)
    unit = prof.target(0, 1)
    pol = cast.CastPolicy(prof, c3=float(sc[:, m - 1].exp().mean()) / (lam / unit))
    assert pol.n_verify(sc, 100) == m


def test_costlier_hardware_never_grows_the_tree():
    """Scaling the cost tables up never increases width or verify count; free tokens never decrease them."""
    base = cast.linear_profile(1, lam=0.01, delta=0.05, draft_lam=0.003, draft_delta=0.01)
    sc = sorted_scores(1, 40, 3)
    info = cast.tree.LevelInfo(1, sc, 100, 1)

    def shape(p):
        pol = cast.CastPolicy(p, c1=2.0, top_k=40)
        return pol.width(info), pol.n_verify(sc, 100)

    w0, m0 = shape(base)
    for f in (1.5, 3.0, 10.0):
        p = cast.linear_profile(1, lam=0.01 * f, delta=0.05, draft_lam=0.003 * f, draft_delta=0.01)
        w, m = shape(p)
        assert w <= w0 and m <= m0
    flat = cast.linear_profile(1, lam=0.0, delta=0.05, draft_lam=0.0, draft_delta=0.01)
    w, m = shape(flat)
    assert w >= w0 and m >= m0 and w == 40  # free extra tokens: keep every useful one


def test_marginal_select_scans_past_flat_stretches():
    u = [1.0, 1.5, 1.6, 2.5, 2.6]
    c = [1.0, 2.0, 2.0, 2.0, 6.0]  # k=2..4 cost the same as k=2 (one tile), k=5 is expensive
    assert cast.policy.marginal_select(u, c, threshold=0.4) == 4
    assert cast.policy.marginal_select(u, c, threshold=10.0) == 1


def test_profile_lookup_rounds_context_up_and_interpolates():
    T = np.array([[1.0, 2.0, 4.0], [2.0, 3.0, 5.0]])
    p = cast.LatencyProfile("x", 1, [64, 128], [1, 2, 4], [1, 2, 4], T, T)
    assert p.target(10, 1) == 1.0 and p.target(64, 1) == 1.0 and p.target(65, 1) == 2.0  # next grid point
    assert p.target(10_000, 4) == 5.0  # clamped to the table
    assert p.target(64, 3) == pytest.approx(3.0) and p.target(64, 6) == pytest.approx(6.0)  # interp / extrapolate


def test_measured_profile_and_cast_are_lossless(models, tmp_path, monkeypatch, prompts):
    """A real (tiny) profile is cached per batch size, and CAST decoding with it is identical to generate."""
    monkeypatch.setenv("NBLIB_CACHE", str(tmp_path))
    T, D = models["t_small"], models["d_rand"]
    kw = dict(contexts=(8, 32), target_n=(1, 4, 16), draft_n=(1, 4), repeats=1)
    profs = {b: cast.cached_profile(T, D, b, **kw) for b in (1, 2)}
    assert profs[1].target_s.shape == (2, 3) and (profs[1].target_s > 0).all()
    assert np.all(np.diff(profs[2].target_s, axis=1) >= 0)
    for prof in profs.values():  # what a step costs beyond its forwards, and the kernel crossover, were measured
        assert {"step_s", "level_s", "nodraft_s"} <= set(prof.overhead)
        assert all(prof.overhead[k] >= 0 for k in ("step_s", "level_s", "nodraft_s"))
        assert prof.step_nodraft(8) >= prof.target(8, 1)
        assert prof.kernel_rows is None or 0 <= prof.kernel_rows <= 16 * prof.batch
    again = cast.cached_profile(T, D, 1, **kw)
    np.testing.assert_array_equal(again.target_s, profs[1].target_s)  # a cache hit, not a re-measurement
    assert len(list((tmp_path / "artefacts" / "cast_profile").glob("*.joblib"))) == 2
    ps = prompts(4)
    ref = cast.greedy_reference(T, ps, 16)
    for c1, c2 in [(1.0, None), (0.1, 0.1), (50.0, 5.0)]:
        pol = cast.CastPolicy(profs, c1=c1, c2=c2, top_k=4, max_depth=5)
        assert cast.generate(T, D, ps[:2], 16, pol).sequences + cast.generate(T, D, ps[2:], 16, pol).sequences == ref
        assert cast.generate(T, T, ps, 16, pol).sequences == ref


def test_cast_policy_bad_input():
    with pytest.raises(ValueError, match="at least one latency profile"):
        cast.CastPolicy({})
    with pytest.raises(ValueError, match="max_depth must be a positive integer"):
        cast.CastPolicy(cast.linear_profile(1, 0.1, 0.1), max_depth=0)


def test_cast_drafts_nothing_when_the_profile_says_drafting_costs_more(models, prompts):
    """A profile whose draft costs a second per level: CAST decodes without a draft from its first step (no
    drafted warm-up: even a draft that is always right could not pay), apart from rare probes, and the output is
    still the target's greedy output. With prior=None (warm up whatever the profile says) it drafts first, then
    stops."""
    T, D = models["t_small"], models["d_rand"]
    ps = prompts(4)
    ref = cast.greedy_reference(T, ps, 40)
    dear = {4: cast.linear_profile(4, 1e-3, 1e-3, draft_lam=1.0, draft_delta=1.0)}
    for draft in (D, T):  # even a draft that is always right does not pay for itself here
        for prior in (0.5, 1.0):
            pol = cast.CastPolicy(dear, probe=16, warmup=2, measured=False, prior=prior)
            res = cast.generate(T, draft, ps, 40, pol)
            assert res.sequences == ref
            none = [s == (0, 0, 0) for s in res.shapes]
            assert all(none[:16]) and sum(none) >= len(none) - 2, res.shapes  # the first probe after 16 steps
        pol = cast.CastPolicy(dear, probe=16, warmup=2, measured=False, prior=None)
        res = cast.generate(T, draft, ps, 40, pol)
        assert res.sequences == ref
        none = sum(s == (0, 0, 0) for s in res.shapes)
        assert res.shapes[0] != (0, 0, 0) and none >= len(res.shapes) - 4, res.shapes


def test_the_warm_up_drafts_only_where_the_profile_says_drafting_could_pay():
    """prior_rate: the best chain's tokens (1 + p + ... + p^k) per predicted second (step overhead, k draft
    forwards, k - 1 levels' overhead, a (k + 1)-token verify). A CPU-like profile (a step's cost mostly fixed,
    a cheap draft) warms up; the same profile with a drafted step's overhead of two plain steps (batch 8 on a
    2-core CPU) starts without a draft; rows finishing (a new batch size) are decided again."""
    cpu = cast.linear_profile(1, 1e-4, 40e-3, draft_lam=1e-4, draft_delta=2e-3)  # 40 ms a step, 2 ms a draft level
    cpu.overhead = {"nodraft_s": 0.0, "step_s": 3e-3, "level_s": 3e-3}
    pol = cast.CastPolicy(cpu, max_depth=4)
    k1 = 1.5 / (3e-3 + 2.1e-3 + 40.2e-3)
    k2 = 1.75 / (3e-3 + 2 * 2.1e-3 + 3e-3 + 40.3e-3)
    assert pol.prior_rate(1, 100) == pytest.approx(max(k1, k2, pol.prior_rate(1, 100)))
    assert pol.prior_rate(1, 100) >= k2 > 1.05 / 40.1e-3
    assert pol.warms_up(1, 100) and pol.should_draft(1, 100)
    b8 = cast.linear_profile(8, 1e-4, 60e-3, draft_lam=1e-3, draft_delta=8e-3)
    b8.overhead = {"nodraft_s": 0.0, "step_s": 40e-3, "level_s": 10e-3}
    pol = cast.CastPolicy({1: cpu, 8: b8}, max_depth=4)
    assert pol.prior_rate(8, 100) < 1.05 / b8.step_nodraft(100)
    assert not pol.should_draft(8, 100) and not pol.warms_up(8, 100)
    assert pol.log[-1]["verify"] == 0
    assert not pol.warms_up(7, 100)  # 7 rows left: the nearest profile (8) decides again
    assert pol.warms_up(1, 100)
    assert cast.CastPolicy(b8, prior=None).should_draft(8, 100)  # prior=None: always warm up
    assert cast.CastPolicy(b8, prior=1.0).prior_rate(8, 100) > pol.prior_rate(8, 100)


def test_a_fresh_policy_that_skipped_the_warm_up_still_probes_drafting():
    """Without a warm-up the losing choice is still tried after `probe` plain steps; a probe that emits enough
    tokens for its predicted cost turns drafting on."""
    b8 = cast.linear_profile(8, 1e-4, 60e-3, draft_lam=1e-3, draft_delta=8e-3)
    b8.overhead = {"nodraft_s": 0.0, "step_s": 40e-3, "level_s": 10e-3}
    pol = cast.CastPolicy(b8, probe=8, measured=False)
    choices = []
    for _ in range(9):
        choices.append(pol.should_draft(8, 100))
        if not choices[-1]:
            pol.observe(8, 1.0, 0.06, False)
    assert choices == [False] * 8 + [True], choices  # 8 plain steps, then the probe
    scores = torch.log(torch.tensor([[0.99, 0.005]] * 8))
    pol.width(cast.tree.LevelInfo(1, scores, 100, 8))
    pol.n_verify(scores, 100)
    pol.observe(8, 6.0, 0.12, True)  # an (unrealistically) good probe: 6 tokens per row
    assert pol.rates(8, 100)[0] > 1.05 * pol.rates(8, 100)[1]
    assert pol.should_draft(8, 100)
    # measured=True (the default): the probe is judged on its measured seconds against the measured plain steps
    for probe_s, drafts in ((0.5, False), (0.12, True)):  # 6 tokens in 0.5 s (a slow catch-up) loses to 1 in 0.06
        pol = cast.CastPolicy(b8, probe=8)
        for _ in range(10):  # 2 measured plain steps, then 8 skipped ones
            assert not pol.should_draft(8, 100)
            pol.observe(8, 1.0, 0.06, False)
        assert pol.should_draft(8, 100)
        pol.width(cast.tree.LevelInfo(1, scores, 100, 8))
        pol.n_verify(scores, 100)
        pol.observe(8, 6.0, probe_s, True)
        assert pol.rates(8, 100) == pytest.approx((6.0 / probe_s, 1.0 / 0.06))
        assert pol.should_draft(8, 100) is drafts


def test_cast_keeps_drafting_when_drafting_pays(models, prompts):
    """A free draft that is always right (the target itself) and cheap verification: CAST never skips the draft."""
    T = models["t_small"]
    ps = prompts(4)
    cheap = {4: cast.linear_profile(4, 1e-4, 1e-2, draft_lam=0.0, draft_delta=0.0)}
    pol = cast.CastPolicy(cheap, measured=False)
    res = cast.generate(T, T, ps, 40, pol)
    assert res.sequences == cast.greedy_reference(T, ps, 40)
    assert all(s[2] > 0 for s in res.shapes) and res.mean_accepted > 2


def test_no_draft_rate_counts_the_measured_overhead():
    """A step without a draft costs one target token plus the profile's measured overhead; the decision compares
    drafted steps' tokens per predicted second with that."""
    p = cast.linear_profile(1, 1e-3, 1e-3)
    assert p.step_nodraft(100) == pytest.approx(2e-3)
    p.overhead = {"nodraft_s": 5e-3, "step_s": 0.0, "level_s": 0.0}
    assert p.step_nodraft(100) == pytest.approx(7e-3)
    p.overhead = {"nodraft_s": 0.0, "step_s": 0.05, "level_s": 0.0}  # a drafted step costs 50 ms more
    pol = cast.CastPolicy(p, warmup=1, probe=16, measured=False, prior=None)
    assert pol.should_draft(1, 100)  # nothing observed yet: draft (prior=None: the warm-up drafts regardless)
    scores = torch.log(torch.tensor([[0.5, 0.2, 0.1]]))
    pol.width(cast.tree.LevelInfo(1, scores, 100, 1))
    pol.n_verify(scores, 100)
    assert pol.log[-1]["predicted_s"] > 0.05
    pol.observe(1, 1.5, 0.06, True)  # 1.5 tokens per ~53 ms < 1 token per 2 ms: no draft
    assert not pol.should_draft(1, 100)
    pol.observe(1, 1.0, 0.002, False)
    assert pol.log[-1]["verify"] == 0 and pol.log[-1]["seconds"] == 0.002
    assert sum(pol.should_draft(1, 100) for _ in range(60)) == 2  # probes after 16, then 32 more skipped steps


def test_measured_rates_decide_once_both_kinds_of_step_were_seen():
    """measured=True: after `warmup` drafted steps it decodes `warmup` steps without a draft, then compares the
    measured tokens per second of both, whatever the profile predicted; the loser is probed after 16, 32, ..."""
    import copy
    p = cast.linear_profile(1, 1e-3, 1e-3)  # predicts a drafted step emitting 2 tokens is as fast as a plain one
    pol = cast.CastPolicy(p, warmup=2, probe=16, prior=None)  # warm up whatever the profile predicts
    scores = torch.log(torch.tensor([[0.9, 0.05, 0.01]]))

    def drafted(seconds):
        assert pol.should_draft(1, 100)
        pol.width(cast.tree.LevelInfo(1, scores, 100, 1))
        pol.n_verify(scores, 100)
        pol.observe(1, 2.0, seconds, True)

    drafted(0.05)
    drafted(0.05)  # 2 tokens per 50 ms measured (the profile predicted a few ms)
    for _ in range(2):  # warm-up of steps without a draft, whatever the rates
        assert not pol.should_draft(1, 100)
        pol.observe(1, 1.0, 0.01, False)  # 1 token per 10 ms: 100 tok/s > 40 tok/s
    rd, rp = pol.rates(1, 100)
    assert rd == pytest.approx(40.0) and rp == pytest.approx(100.0)
    assert sum(pol.should_draft(1, 100) for _ in range(60)) == 2  # plain wins; probes after 16, then 32
    # the same policy trusting the profile alone keeps drafting (the profile rates a drafted step level with a
    # plain one, 500 tok/s each: margin=0 lets that tie draft)
    pol2 = cast.CastPolicy(p, warmup=2, probe=16, measured=False, margin=0.0)
    pol2.stats = copy.deepcopy(pol.stats)
    assert pol2.should_draft(1, 100)
    # when drafted steps turn fast, drafting wins back (the next probe sees it, then the choice flips)
    for _ in range(12):
        pol.stats[1]["sec_s"] = 0.005
        drafted_now = pol.should_draft(1, 100)
        if drafted_now:
            break
    assert pol.rates(1, 100)[0] > pol.rates(1, 100)[1]
    assert all(pol.should_draft(1, 100) for _ in range(15))


def test_cast_stops_drafting_a_draft_that_is_slow_in_practice(models, prompts):
    """A draft whose every forward sleeps 60 ms (far above a step of the tiny target, even on a loaded machine),
    under a profile that says drafting is free: the measured seconds overrule the profile and CAST decodes
    without a draft after its warm-up (output unchanged)."""
    import copy
    import time
    T = models["t_small"]
    slow = copy.deepcopy(T)
    slow.register_forward_pre_hook(lambda mod, args: time.sleep(0.06))
    ps = prompts(2)
    free = {2: cast.linear_profile(2, 1e-4, 1e-3, draft_lam=0.0, draft_delta=0.0)}  # a step's cost mostly fixed
    pol = cast.CastPolicy(free, warmup=2, probe=16)
    res = cast.generate(T, slow, ps, 40, pol)
    assert res.sequences == cast.greedy_reference(T, ps, 40)
    none = [s == (0, 0, 0) for s in res.shapes]
    assert not any(none[:2]) and all(none[2:4])  # 2 drafted, 2 measured without a draft
    assert sum(none[4:]) >= len(none[4:]) - 2, res.shapes  # then no draft apart from probes


def test_kernel_crossover_is_the_last_grid_point_where_the_kernel_still_wins():
    """crossover: the kernel until it first loses (medians over contexts), 0 when it loses at once."""
    ns = [1, 2, 4, 8]
    sk = np.array([[1.0, 1.1, 1.3, 3.0], [1.0, 1.2, 1.4, 3.2]])
    th = np.array([[1.2, 1.3, 1.5, 2.0], [1.1, 1.3, 1.5, 2.1]])
    assert policy.crossover(sk, th, ns) == 4
    assert policy.crossover(sk, sk / 2, ns) == 0
    assert policy.crossover(sk, sk * 2, ns) == 8


@pytest.mark.parametrize("draft_rate, drafts", [(103.0, False), (110.0, True)])
def test_a_near_tie_decodes_without_a_draft(draft_rate, drafts):
    """Drafting must beat the plain step's measured rate by at least `margin` (5 %): at 103 vs 100 tok/s (a tie
    within timing noise) CAST decodes plainly, at 110 vs 100 it drafts; margin=0 restores the strict comparison."""
    p = cast.linear_profile(1, 1e-3, 1e-3)
    for margin, expect in ((0.05, drafts), (0.0, True)):
        pol = cast.CastPolicy(p, warmup=1, probe=16, margin=margin)
        pol.stats[1] = {"n": 5, "emitted": 1.0, "cost_s": 0.0, "sec_s": 1.0 / draft_rate, "n_plain": 5,
                        "emitted_plain": 1.0, "sec_plain": 0.01, "skipped": 0, "wait": 16, "arm": True}
        rd, rp = pol.rates(1, 100)
        assert rd == pytest.approx(draft_rate) and rp == pytest.approx(100.0)
        assert pol.should_draft(1, 100) is expect


def test_rows_finishing_start_from_the_rates_of_the_batch_they_shrank_from():
    """Batch 4 measured (plain steps win): when a row finishes, batch 3 decodes without a draft at once (no
    second warm-up) from batch 4's rates; a call that starts at batch 3, or a batch 4 not yet measured, is not
    seeded."""
    cpu = cast.linear_profile(4, 1e-4, 40e-3, draft_lam=1e-4, draft_delta=2e-3)
    cpu.overhead = {"nodraft_s": 0.0, "step_s": 3e-3, "level_s": 3e-3}
    scores = torch.log(torch.tensor([[0.6, 0.2]] * 4))
    pol = cast.CastPolicy(cpu, probe=16)
    for _ in range(2):  # the warm-up: two drafted steps, each slower per token than a plain one
        assert pol.should_draft(4, 100)
        pol.width(cast.tree.LevelInfo(1, scores, 100, 4))
        pol.n_verify(scores, 100)
        pol.observe(4, 1.3, 0.09, True)
    for _ in range(2):
        assert not pol.should_draft(4, 100)
        pol.observe(4, 1.0, 0.045, False)
    assert not pol.should_draft(4, 100)
    assert not pol.should_draft(3, 100)  # a row finished: no fresh warm-up
    assert pol.stats[3]["seeded_from"] == 4 and pol.stats[3]["n"] == 2
    assert pol.rates(3, 100) == pytest.approx(pol.rates(4, 100))
    pol.reset()
    assert pol.should_draft(2, 100) and "seeded_from" not in pol.stats[2]  # a new call at batch 2: its own warm-up
    fresh = cast.CastPolicy(cpu, probe=16)
    assert fresh.should_draft(4, 100) and fresh.should_draft(3, 100)  # nothing measured at 4 yet: no seed
    assert "seeded_from" not in fresh.stats[3]


@pytest.mark.parametrize("prior", [-0.1, 1.5, "half", True, float("nan")])
def test_prior_out_of_range_is_one_clear_error(prior):
    """A prior outside [0, 1] (or not a number) names what it is."""
    with pytest.raises(ValueError, match="prior"):
        cast.CastPolicy(cast.linear_profile(1, 1e-3, 1e-3), prior=prior)


@pytest.mark.parametrize("margin", [-0.1, 1.0, "5%"])
def test_margin_out_of_range_is_one_clear_error(margin):
    """A margin outside [0, 1) names what it is."""
    with pytest.raises(ValueError, match="margin"):
        cast.CastPolicy(cast.linear_profile(1, 1e-3, 1e-3), margin=margin)
