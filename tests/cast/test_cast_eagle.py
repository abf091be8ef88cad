"""The feature-level (EAGLE-style) draft: lossless decoding, the real features it reads, training, files, errors."""
from __future__ import annotations

import pytest
import torch

from nblib import cast
from nblib.cast import eagle

from cast_helpers import Intermittent

POLICIES = [cast.chain(1), cast.chain(4), cast.FixedTree(3, 3, 8), cast.FixedTree(4, 5, 30),
            Intermittent(cast.FixedTree(3, 3, 8)), Intermittent(cast.chain(2), (0, 0, 1))]


def feature_draft(target, seed: int = 20, vocab=None):
    """A random feature draft for a tiny target (its block re-initialised so it is not a copy of the target's)."""
    torch.manual_seed(seed)
    d = eagle.init_from_target(target, vocab if vocab is not None else range(target.config.vocab_size))
    for p in d.body.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, 0, 0.2)
    return d.eval()


@pytest.mark.parametrize("target", ["t_small", "t_deep"])
@pytest.mark.parametrize("policy", POLICIES, ids=repr)
def test_feature_draft_is_lossless_every_batch_size(models, target, policy, prompts):
    """Greedy output with a feature draft equals the target's own greedy generate, at batch 1, 2, 4 and 8 (with
    steps that skip the draft: it then catches up on the tokens and features it missed)."""
    T = models[target]
    D = feature_draft(T)
    ps = prompts(8)
    ref = cast.greedy_reference(T, ps, 16)
    for bs in (1, 2, 4, 8):
        got = []
        for s in range(0, len(ps), bs):
            got += cast.generate(T, D, ps[s:s + bs], 16, policy).sequences
        assert got == ref, f"batch {bs}"


def test_feature_draft_lossless_with_eos_reduced_vocab_and_cast(models, prompts):
    """Rows stopping at eos, a reduced draft vocabulary and CAST's policy stay identical to generate."""
    T = models["t_small"]
    D = feature_draft(T, vocab=range(0, T.config.vocab_size, 2))
    ps = prompts(6, seed=7)
    free = cast.greedy_reference(T, ps, 40)
    eos = free[0][5]
    ref = cast.greedy_reference(T, ps, 40, eos_token_id=eos)
    assert any(len(r) < 40 for r in ref)
    assert cast.generate(T, D, ps, 40, cast.FixedTree(4, 3, 10), eos_token_id=eos).sequences == ref
    pol = cast.CastPolicy({b: cast.linear_profile(b, 0.01, 0.001) for b in (1, 2, 4, 6)})
    assert cast.generate(T, D, ps, 40, pol, eos_token_id=eos).sequences == ref
    assert cast.generate(T, D, ps, 40, Intermittent(cast.FixedTree(3, 2, 6)), eos_token_id=eos).sequences == ref


def test_draft_reads_the_targets_real_features(models, prompts):
    """Every committed draft entry is the pair (the target's feature at position t, token t+1)."""
    T = models["t_small"]
    D = feature_draft(T)
    p = prompts(1, seed=4, lengths=(7,))[0]
    seen = []
    fuse = D.fuse
    D.fuse = lambda tok, f: (seen.append((tok.clone(), f.clone())), fuse(tok, f))[1]
    try:
        res = cast.generate(T, D, [p], 12, cast.chain(3))
    finally:
        del D.fuse
    seq = p + res.sequences[0]
    with torch.no_grad():
        feats = T.model(input_ids=torch.tensor([seq])).last_hidden_state[0]  # (L, d)
    # prefill calls carry the committed pairs; tree levels carry predicted features (skipped: they differ)
    pairs_tok, pairs_f = [], []
    n_prefill = res.steps  # one draft prefill per speculative step
    # the draft prefill of each step is the first fuse call after the previous step's tree
    calls = iter(seen)
    for _ in range(n_prefill):
        tok, f = next(calls)
        pairs_tok += tok[0].tolist()
        pairs_f.append(f[0])
        for _ in range(2):  # chain(3): levels 1 and 2 are fed (level 3's children are not expanded)
            next(calls)
    pairs_f = torch.cat(pairs_f)
    n = len(pairs_tok)
    assert pairs_tok == seq[1:n + 1]
    torch.testing.assert_close(pairs_f, feats[:n], atol=1e-4, rtol=1e-4)


def test_lean_verify_equals_full_verify(models, prompts):
    """The lean LM head (only nodes with children + the bonus node) accepts the same path and bonus."""
    T = models["t_deep"]
    ps = prompts(3)
    for lean in (True, False):
        kv = cast.tree.KV(3, torch.device("cpu"))
        with torch.no_grad():
            first = cast.tree.prefill(T, kv, ps).argmax(-1)
            g = torch.Generator().manual_seed(1)
            par = torch.tensor([[0, 0, 0, 1, 1, 3, 2]] * 3)
            dep = torch.tensor([[0, 1, 1, 2, 2, 3, 2]] * 3)
            tok = torch.randint(0, T.config.vocab_size, (3, 7), generator=g)
            ref = cast.greedy_reference(T, ps, 3)
            for b in range(3):  # make some nodes right so paths of several lengths are accepted
                tok[b, 1], tok[b, 3] = ref[b][1], ref[b][2] if b else tok[b, 3]
            out = cast.tree.verify(T, kv, first, tok, par, dep, lean=lean, features=True)
        if lean:
            lean_out = out
    for a, b in zip(lean_out, out, strict=True):
        torch.testing.assert_close(a, b)
    assert lean_out[0].sum(1).tolist() != [1, 1, 1]  # not a trivial case: some drafted nodes accepted


def test_ttt_masks_see_prefix_ancestors_and_self():
    """Unroll step k entry t sees real pairs 0..t, its own earlier-step entries and itself, nothing else."""
    m = eagle.ttt_masks(4, 3)
    (m1, p1), (m2, p2), (m3, p3) = m
    ok3 = m3[0, 0] == 0  # (4, 12)
    assert ok3[2].tolist() == [True, True, True, False] + [False, False, True, False] + [False, False, True, False]
    assert (m1[0, 0] == 0).tolist() == torch.tril(torch.ones(4, 4, dtype=torch.bool)).tolist()
    assert p1.tolist() == [[0, 1, 2, 3]] and p3.tolist() == [[2, 3, 4, 5]]


def test_training_lowers_the_loss(models):
    """A few optimizer steps on the target's own features lower the draft's loss (the loss is trainable)."""
    T = models["t_small"]
    D = feature_draft(T)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, T.config.vocab_size, (4, 24), generator=g)
    with torch.no_grad():
        feats = T.model(input_ids=ids).last_hidden_state  # (4, 24, d) the features the LM head reads
        labels = T.lm_head(feats).argmax(-1)  # (4, 24) the target's greedy next tokens
    opt = torch.optim.AdamW([p for p in D.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(30):
        loss, stats = eagle.loss_on(D, feats, ids, labels, steps=2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.7 * first
    assert set(stats) == {"agree1", "agree2", "feat1", "feat2"}


def test_save_load_round_trip_and_mismatch_errors(models, tmp_path, tiny):
    """A saved feature draft reloads to the same outputs; a target of another width or vocabulary is refused."""
    T = models["t_small"]
    D = feature_draft(T, vocab=range(0, 60))
    path = eagle.save(D, tmp_path / "fd.safetensors", {"note": "test"})
    E = eagle.load(path, T)
    assert E.vocab.tolist() == list(range(60))
    x, f = torch.tensor([[1, 2, 3]]), torch.randn(1, 3, T.config.hidden_size)
    with torch.no_grad():
        torch.testing.assert_close(E.fuse(x, f), D.half().float().fuse(x, f), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="width .* 32 vs the target's 48"):
        eagle.load(path, models["t_deep"])
    with pytest.raises(ValueError, match="vocabulary size 97 vs the target's 50"):
        eagle.load(path, tiny(5, vocab=50))
    with pytest.raises(FileNotFoundError, match="train_eagle.py"):
        eagle.load(tmp_path / "nothing.safetensors", T)
    with pytest.raises(ValueError, match="width"):
        cast.generate(models["t_deep"], D, [[1, 2]], 4, cast.chain(2))
