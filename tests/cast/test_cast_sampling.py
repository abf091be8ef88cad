"""Speculative sampling at temperature > 0 is lossless in distribution; at temperature 0 it is today's greedy path."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from nblib import cast
from nblib.checks import BadArgument

V = 6          # a small vocabulary: the joint distribution of three tokens has V**3 cells
PROMPT = [1, 4, 2]


def exact_joint(target, sampling: cast.Sampling, n: int = 3) -> dict:
    """P(t1..tn) under plain sampling, computed by full forwards over every prefix (no cache)."""
    probs = {(): 1.0}
    for _ in range(n):
        prefixes = list(probs)
        ids = torch.tensor([PROMPT + list(p) for p in prefixes])
        with torch.no_grad():
            p = sampling.probs(target(input_ids=ids).logits[:, -1])
        probs = {pre + (t,): probs[pre] * float(p[i, t]) for i, pre in enumerate(prefixes) for t in range(V)}
    return probs


def draws(fn, calls: int, rows: int) -> list[tuple]:
    """Triples of tokens from `calls` decoding calls of `rows` copies of the prompt (seed = call index)."""
    out = []
    for seed in range(calls):
        res = fn(seed, [PROMPT] * rows)
        out += [tuple(s[:3]) for s in res.sequences]
    return out


def chi2_pvalue(samples: list[tuple], joint: dict) -> float:
    """Chi-square test of the sampled triples against the exact joint (cells expected < 5 pooled into one)."""
    n = len(samples)
    counts = {k: 0 for k in joint}
    for s in samples:
        counts[s] += 1
    big = [k for k, p in joint.items() if p * n >= 5]
    small = [k for k in joint if k not in big]
    obs = [counts[k] for k in big] + ([sum(counts[k] for k in small)] if small else [])
    exp = [joint[k] * n for k in big] + ([sum(joint[k] for k in small) * n] if small else [])
    exp = np.array(exp) * n / np.sum(exp)
    return float(chisquare(obs, exp).pvalue)


@pytest.fixture
def pair(tiny):
    """A small-vocabulary target and a random draft for it."""
    return tiny(20, vocab=V), tiny(21, layers=1, vocab=V)


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9)])
@pytest.mark.parametrize("which_draft", ["random draft", "self draft"])
def test_speculative_sampling_matches_the_targets_distribution(pair, temperature, top_p, which_draft):
    torch.set_num_threads(1)
    target, other = pair
    draft = other if which_draft == "random draft" else target
    joint = exact_joint(target, cast.Sampling(temperature, top_p))
    policy = cast.FixedTree(depth=3, top_k=3, budget=8)

    def spec(seed, prompts):
        return cast.generate(target, draft, prompts, max_new_tokens=3, policy=policy,
                             sampling=cast.Sampling(temperature, top_p, seed))

    def plain(seed, prompts):
        return cast.plain_greedy(target, prompts, 3, sampling=cast.Sampling(temperature, top_p, 100 + seed))

    s_spec, s_plain = draws(spec, 6, 500), draws(plain, 6, 500)
    p_spec, p_plain = chi2_pvalue(s_spec, joint), chi2_pvalue(s_plain, joint)
    assert p_plain > 1e-3, p_plain          # the reference itself samples the exact distribution
    assert p_spec > 1e-3, p_spec            # and speculative sampling does too (seeded: not flaky)
    if top_p < 1.0:                          # tokens outside the nucleus never appear
        assert all(joint[s] > 0 for s in s_spec)


def test_speculative_sampling_accepts_drafts(pair):
    """With the target as its own draft, most steps accept more than the bonus token (the point of the tree)."""
    target, _ = pair
    res = cast.generate(target, target, [PROMPT] * 64, max_new_tokens=12, policy=cast.FixedTree(3, 3, 8),
                        sampling=cast.Sampling(0.7, 1.0, 0))
    assert res.mean_accepted > 1.5 and all(len(s) == 12 for s in res.sequences)


def test_temperature_zero_is_todays_greedy_path(models, prompts):
    target, draft = models["t_small"], models["d_rand"]
    ps = prompts(4)
    greedy = cast.generate(target, draft, ps, max_new_tokens=10)
    zero = cast.generate(target, draft, ps, max_new_tokens=10, sampling=cast.Sampling(0.0, 0.5, 7))
    assert zero.sequences == greedy.sequences == cast.greedy_reference(target, ps, 10)
    assert cast.plain_greedy(target, ps, 10, sampling=cast.Sampling(0.0)).sequences == greedy.sequences


def test_a_seed_reproduces_a_sampled_run(models, prompts):
    target, draft = models["t_small"], models["d_rand"]
    ps = prompts(3)
    a, b, c = (cast.generate(target, draft, ps, max_new_tokens=8, sampling=cast.Sampling(0.8, 0.95, s))
               for s in (3, 3, 4))
    assert a.sequences == b.sequences and a.sequences != c.sequences


def test_nucleus_keeps_the_smallest_set_reaching_top_p():
    s = cast.Sampling(1.0, 0.6)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    p = s.probs(logits)
    assert torch.allclose(p, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    assert torch.allclose(cast.Sampling(1.0, 1.0).probs(logits), torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.equal(cast.Sampling(0.0).probs(logits), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))


@pytest.mark.parametrize("kwargs, match", [({"temperature": -0.1}, "temperature"), ({"temperature": float("nan")}, "temperature"),
                                           ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p"),
                                           ({"seed": -1}, "seed")])
def test_bad_sampling_settings_are_one_clear_error(kwargs, match):
    with pytest.raises(BadArgument, match=match):
        cast.Sampling(**kwargs)


def test_a_draft_for_another_target_or_a_bad_sampling_argument_is_refused(models, prompts, tiny):
    with pytest.raises(BadArgument, match="sampling"):
        cast.generate(models["t_small"], models["d_rand"], prompts(1), 4, sampling={"temperature": 0.7})
    with pytest.raises(ValueError, match="vocabulary"):       # a draft built for a target with another tokenizer
        cast.generate(models["t_small"], tiny(5, layers=1, vocab=V), prompts(1), 4, sampling=cast.Sampling(0.7))


def test_every_cell_combination_is_reachable_in_the_exact_joint(pair):
    """The exact joint sums to one (the test's own reference is a distribution)."""
    target, _ = pair
    joint = exact_joint(target, cast.Sampling(0.7, 0.9))
    assert sum(joint.values()) == pytest.approx(1.0, abs=1e-6)
    assert len(joint) == len(list(itertools.product(range(V), repeat=3)))
