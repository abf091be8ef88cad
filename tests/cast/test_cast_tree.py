"""Speculative decoding with draft trees (nblib.cast): lossless greedy output, tree/mask/cache bookkeeping, errors."""
from __future__ import annotations

import pytest
import torch

from nblib import cast

from cast_helpers import Intermittent

POLICIES = [cast.chain(1), cast.chain(4), cast.FixedTree(depth=1, top_k=4, budget=4), cast.FixedTree(3, 3, 8),
            cast.FixedTree(4, 5, 30), cast.FixedTree(6, 2, 5), cast.NoDraft(), Intermittent(cast.FixedTree(3, 3, 8))]


@pytest.mark.parametrize("target", ["t_small", "t_deep", "t_mha"])
@pytest.mark.parametrize("policy", POLICIES, ids=repr)
def test_lossless_every_batch_size(models, target, policy, prompts):
    """Greedy output ids equal the target's own greedy generate, prompt by prompt, at batch 1, 2, 4 and 8
    (no draft on every step, or on some steps, included)."""
    T = models[target]
    ps = prompts(8)
    ref = cast.greedy_reference(T, ps, 16)
    for bs in (1, 2, 4, 8):
        got = []
        for s in range(0, len(ps), bs):
            got += cast.generate(T, models["d_rand"], ps[s:s + bs], 16, policy).sequences
        assert got == ref, f"batch {bs}"


@pytest.mark.parametrize("draft", ["d_rand", "d_other", "self"])
def test_lossless_with_eos_and_long_runs(models, draft, prompts):
    """Rows that stop early (eos) and long runs (cache compaction) stay identical to generate."""
    T = models["t_small"]
    D = T if draft == "self" else models[draft]
    ps = prompts(6, seed=7)
    ref_free = cast.greedy_reference(T, ps, 40)
    eos = ref_free[0][5]  # a token the target really emits, so at least one row stops early
    ref = cast.greedy_reference(T, ps, 40, eos_token_id=eos)
    assert any(len(r) < 40 for r in ref)
    res = cast.generate(T, D, ps, 40, cast.FixedTree(4, 3, 10), eos_token_id=eos)
    assert res.sequences == ref
    for pol in (cast.NoDraft(), Intermittent(cast.FixedTree(4, 3, 10), (0, 1, 1, 0, 0, 0))):
        res = cast.generate(T, D, ps, 40, pol, eos_token_id=eos)
        assert res.sequences == ref, repr(pol)
        assert any(s == (0, 0, 0) for s in res.shapes)  # steps without a draft really happened
    assert cast.generate(T, D, ps, 40, cast.FixedTree(5, 4, 16)).sequences == ref_free


def test_reduced_draft_vocabulary_is_lossless(models, prompts):
    """A draft proposing only from a token subset (EAGLE-3-style head) is still lossless."""
    from nblib.cast.draft import Draft

    T = models["t_small"]
    ps = prompts(4, seed=5)
    d = Draft(models["d_rand"], torch.arange(0, T.config.vocab_size, 2))
    assert cast.generate(T, d, ps, 20, cast.FixedTree(3, 4, 12)).sequences == cast.greedy_reference(T, ps, 20)
    with pytest.raises(ValueError, match="top_k"):
        cast.generate(T, d, ps, 4, cast.FixedTree(2, T.config.vocab_size // 2 + 2, 4))


def test_self_draft_accepts_every_token(models, prompts):
    """With the target as its own draft, a chain of depth d emits d + 1 tokens per target call."""
    T = models["t_small"]
    res = cast.generate(T, T, prompts(2), 31, cast.chain(4))
    assert res.sequences == cast.greedy_reference(T, prompts(2), 31)
    assert res.accepted[:5] == [5.0] * 5
    tree = cast.generate(T, T, prompts(3), 25, cast.FixedTree(4, 3, 100))  # budget >= all drafted nodes
    assert tree.sequences == cast.greedy_reference(T, prompts(3), 25)
    assert tree.mean_accepted > 3.0  # the global top-k frontier may drop the greedy path; most steps keep it


def test_tree_invariants(models, prompts):
    """Verified trees are ancestor-closed, depths follow parents, m <= drafted, one accepted path from the root."""
    T = models["t_small"]
    res = cast.generate(T, models["d_rand"], prompts(3), 12, cast.FixedTree(3, 3, 7), record_trees=True)
    assert res.trees
    for tr in res.trees:
        B, N = tr.tokens.shape
        assert N == 1 + 7 and tr.drafted == 3 + 2 * 9 and N - 1 <= tr.drafted
        for b in range(B):
            par, dep, acc = tr.parent[b], tr.depth[b], tr.accepted[b]
            assert par[0] == 0 and dep[0] == 0 and acc[0]
            for i in range(1, N):
                assert par[i] < i and dep[i] == dep[par[i]] + 1  # parents come first: ancestor-closed
                assert tr.score[b, i] <= tr.score[b, par[i]] + 1e-6  # cumulative log-prob never rises
                if acc[i]:
                    assert acc[par[i]]
            depths = dep[acc].tolist()
            assert sorted(depths) == list(range(len(depths)))  # a single chain root..last


def test_ancestor_mask_rows():
    """Mask row of each node = root + its ancestors + itself."""
    par = torch.tensor([[0, 0, 0, 1, 3, 2]])
    anc = cast.tree.ancestors(par, 4)[0]
    want = {0: {0}, 1: {0, 1}, 2: {0, 2}, 3: {0, 1, 3}, 4: {0, 1, 3, 4}, 5: {0, 2, 5}}
    for i, s in want.items():
        assert set(torch.nonzero(anc[i]).flatten().tolist()) == s


def test_tree_attention_matches_sequential(models, prompts):
    """Every tree node's target logits equal decoding its path one token at a time, in the KV cache."""
    T = models["t_deep"]
    p = prompts(1)[0]
    tok = torch.tensor([[5, 7, 9, 11, 13, 17]])
    par = torch.tensor([[0, 0, 0, 1, 3, 2]])
    dep = torch.tensor([[0, 1, 1, 2, 3, 2]])
    kv = cast.tree.KV(1, torch.device("cpu"))
    with torch.no_grad():
        cast.tree.prefill(T, kv, [p])
        logits = cast.tree.lm_forward(T, kv, tok, cast.tree.ancestors(par, 4), dep, torch.ones_like(tok, dtype=torch.bool))
        for i in range(6):
            path, j = [], i
            while True:
                path.append(int(tok[0, j]))
                if j == 0:
                    break
                j = int(par[0, j])
            ref = T(torch.tensor([p + path[::-1]])).logits[0, -1]
            torch.testing.assert_close(logits[0, i], ref, atol=1e-4, rtol=1e-4)


def test_cache_keeps_only_accepted_entries(models, prompts):
    """After a step the target cache holds prompt + accepted path, with positions advanced accordingly."""
    T = models["t_small"]
    ps = prompts(2)
    res = cast.generate(T, T, ps, 9, cast.chain(3))
    assert res.sequences == cast.greedy_reference(T, ps, 9)
    kv = cast.tree.KV(2, torch.device("cpu"))
    with torch.no_grad():
        first = cast.tree.prefill(T, kv, ps).argmax(-1)
        L = kv.length
        g = cast.greedy_reference(T, ps, 5)   # the target's own next tokens after each prompt
        V = T.config.vocab_size
        # row 0 drafts the target's greedy chain (all accepted); row 1 drafts a wrong first child (none accepted)
        tok = torch.tensor([[0, g[0][1], g[0][2]], [0, (g[1][1] + 1) % V, 0]])
        par = torch.tensor([[0, 0, 1], [0, 0, 1]])
        dep = torch.tensor([[0, 1, 2], [0, 1, 2]])
        on_path, last, bonus = cast.tree.verify(T, kv, first, tok, par, dep)
        assert on_path.sum(1).tolist() == [3, 1]
        assert bonus.tolist() == [g[0][3], g[1][1]]
        assert kv.length == L + 3
        assert kv.n_pos.tolist() == [len(ps[0]) + 3, len(ps[1]) + 1]
        assert kv.valid.sum(1).tolist() == kv.n_pos.tolist()
        # the cache now holds exactly prompt + accepted path: the next prediction is the target's greedy one
        nxt = cast.tree.prefill(T, kv, [[g[0][3]], [g[1][1]]]).argmax(-1)
    assert nxt.tolist() == [g[0][4], g[1][2]]


def test_plain_greedy_matches_generate(models, prompts):
    T = models["t_mha"]
    ps = prompts(4)
    assert cast.plain_greedy(T, ps, 12).sequences == cast.greedy_reference(T, ps, 12)


def test_bad_input_gives_one_clear_error(models, prompts, tiny):
    T, D = models["t_small"], models["d_rand"]
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        cast.FixedTree(depth=0)
    with pytest.raises(ValueError, match="top_k=200 is larger than the draft vocabulary"):
        cast.generate(T, D, prompts(1), 4, cast.FixedTree(2, 200, 4))
    with pytest.raises(ValueError, match="share the target's tokenizer"):
        cast.generate(T, tiny(5, vocab=50), prompts(1), 4)
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        cast.generate(T, D, [[1, 2], []], 4)
    with pytest.raises(ValueError, match="max_new_tokens"):
        cast.generate(T, D, prompts(1), 0)


class _AlwaysDeeper(cast.FixedTree):
    """A policy whose go_deeper never says stop: drafting must still end at MAX_TREE_DEPTH levels."""

    def __init__(self):
        super().__init__(depth=1, top_k=1, budget=4)
        self.asked = 0

    def go_deeper(self, level, kept, info):
        self.asked += 1
        return True


def test_a_policy_that_always_goes_deeper_stops_at_the_cap(models, prompts):
    T, D = models["t_small"], models["d_rand"]
    pol = _AlwaysDeeper()
    ps = prompts(2)
    res = cast.generate(T, D, ps, 3, pol)
    assert res.sequences == cast.greedy_reference(T, ps, 3)  # still lossless
    assert res.shapes and all(levels == cast.tree.MAX_TREE_DEPTH for levels, _, _ in res.shapes)
    assert pol.asked == cast.tree.MAX_TREE_DEPTH * res.steps


def test_depth_arguments_above_the_cap_are_refused():
    cap = cast.tree.MAX_TREE_DEPTH
    assert cast.FixedTree(depth=cap).depth == cap
    with pytest.raises(ValueError, match=f"depth={cap + 1} is above MAX_TREE_DEPTH={cap}"):
        cast.FixedTree(depth=cap + 1)
    with pytest.raises(ValueError, match="above MAX_TREE_DEPTH"):
        cast.chain(cap + 1)
    with pytest.raises(ValueError, match=f"max_depth={cap + 1} is above MAX_TREE_DEPTH"):
        cast.CastPolicy(cast.linear_profile(1, 0.1, 0.1), max_depth=cap + 1)


def test_shipped_policies_satisfy_the_protocol():
    pols = [cast.FixedTree(), cast.chain(3), cast.CastPolicy(cast.linear_profile(1, 0.1, 0.1))]
    for pol in pols:
        assert isinstance(pol, cast.tree.TreePolicy)
        cast.tree.check_policy(pol)


class _NoVerify:
    top_k = 4

    def reset(self):
        pass

    def width(self, info):
        return 1

    def go_deeper(self, level, kept, info):
        return False


def test_a_malformed_policy_is_a_clear_error(models, prompts):
    T, D = models["t_small"], models["d_rand"]
    with pytest.raises(TypeError, match=r"_NoVerify is not a tree policy: it lacks n_verify\(scores, context\)"):
        cast.generate(T, D, prompts(1), 4, _NoVerify())
    with pytest.raises(TypeError, match=r"it lacks top_k: a positive int \(got None\), reset\(\), width\(info\)"):
        cast.generate(T, D, prompts(1), 4, object())
    bad = _NoVerify()
    bad.top_k = "4"
    bad.n_verify = lambda scores, context: 1
    with pytest.raises(TypeError, match="top_k: a positive int"):
        cast.generate(T, D, prompts(1), 4, bad)
