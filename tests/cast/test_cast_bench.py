"""nblib.cast.bench: the side-by-side run with transformers' peers, agreement, verify cost, the headline, files."""
from __future__ import annotations

import types

import pytest
import torch

from nblib import cast
from nblib.cast import eagle
from nblib.cast.draft import Draft


@pytest.fixture(scope="module")
def pair(models):
    """A tiny target, its feature draft and a token draft (a tiny Llama over the full vocabulary)."""
    T = models["t_small"]
    torch.manual_seed(3)
    fd = eagle.init_from_target(T, range(T.config.vocab_size)).eval()
    return T, {"feature": fd, "token": Draft(models["d_rand"], torch.arange(T.config.vocab_size))}


def test_compare_runs_every_peer_losslessly(pair, prompts):
    """Every method at batch 1 and 2 equals generate; the peers refuse batch 2 with a note; baseline speedup is 1."""
    T, drafts = pair
    tok = types.SimpleNamespace(eos_token_id=None)
    rows, env = cast.bench.compare(T, drafts, tok, prompts(2), batches=(1, 2), max_new=10, quick=True, progress=False)
    ran = [r for r in rows if "outputs" in r]
    assert all(r["lossless"] for r in ran)
    assert {r["method"] for r in ran if r["batch"] == 1} >= {"HF generate greedy", "HF assisted", "HF prompt lookup",
                                                             "nblib plain greedy", "chain", "EAGLE-2 tree", "CAST"}
    assert {r["method"] for r in rows if "note" in r} == {"HF assisted", "HF prompt lookup"}
    assert all(r["speedup"] == 1.0 for r in ran if r["method"] == "HF generate greedy")
    assert {r["draft"] for r in ran if r["method"] == "CAST"} == {"feature (EAGLE)", "token"}
    assert len(env["reference"]) == 2
    head = cast.bench.headline({"rows": rows, "env": env, "agreement": {"feature": {"agree1": 0.5}, "token": {"agree1": 0.4}},
                                "verify_cost": [{"n": 1, "lean_rel": 1.0}]}, 2, 10)
    for key in ("cast_over_generate_b1", "eagle_tree_over_generate_b1", "prompt_lookup_over_generate_b1",
                "assisted_over_generate_b1", "draft_top1_agreement", "lossless"):
        assert key in head
    assert head["lossless"] is True and head["cast_over_generate_b2"] is not None
    table = cast.bench.paper_vs_ours(head)
    assert "5.2x" in table.iloc[0, 1]


def test_self_draft_agrees_everywhere(models, prompts):
    """The target as its own token draft agrees with itself on every position; a random draft does not."""
    T = models["t_small"]
    ps = prompts(2)
    ref = cast.greedy_reference(T, ps, 12)
    full = torch.arange(T.config.vocab_size)
    assert cast.bench.draft_agreement(T, Draft(T, full), ps, ref) == {"agree1": 1.0}
    assert cast.bench.draft_agreement(T, Draft(models["d_rand"], full), ps, ref)["agree1"] < 0.5
    fd = eagle.init_from_target(T, full)
    assert set(cast.bench.draft_agreement(T, fd, ps, ref)) == {"agree1", "agree2", "agree3"}


def test_verify_cost_flops_are_linear_and_profile_finds_the_model(pair):
    """FLOPs of n tree tokens are n times one step's; the profiler attributes time to the model's matmuls."""
    T, drafts = pair
    vc = cast.bench.verify_cost(T, ns=(1, 4, 8), context=20, repeats=2)
    assert [round(r["flops_rel"]) for r in vc] == [1, 4, 8]
    assert vc[0]["lean_rel"] == 1.0 and all(r["lean_s"] > 0 and r["hf_s"] > 0 for r in vc)
    prof = cast.bench.profile_ops(T, drafts["feature"], [[1, 2, 3, 4]], max_new=6)
    assert 0 < prof["model_share"] <= 1 and len(prof["table"]) > 3


def test_saved_benchmark_round_trip(tmp_path):
    """save_benchmark drops the outputs and load_benchmark reads it back; a missing file names the command."""
    res = {"rows": [{"method": "m", "outputs": [[1]], "speedup": 1.0}], "env": {}, "agreement": {}}
    path = cast.bench.save_benchmark(res, tmp_path / "b.json")
    back = cast.bench.load_benchmark(path)
    assert back["rows"] == [{"method": "m", "speedup": 1.0}]
    with pytest.raises(FileNotFoundError, match="benchmarks/cast.py"):
        cast.bench.load_benchmark(tmp_path / "none.json")


def test_cast_caches_key_on_the_weights_not_the_models_labels(tiny, tmp_path, monkeypatch, prompts):
    """The sweep and the latency profile are keyed by the sha256 of the target's and the draft's weights: the same
    objects (the same 'names') with weights changed in place, or another model of the same shape, miss the cache;
    unchanged weights hit it."""
    import copy

    from nblib.cast import bench, policy

    monkeypatch.setenv("NBLIB_CACHE", str(tmp_path))
    T, D = tiny(0), tiny(10, layers=1)
    ps = prompts(1, lengths=(4,))
    grid = dict(depths=(1,), top_ks=(2,), budgets=(2,), batches=(1,), max_new=2)
    prof = dict(contexts=(8,), target_n=(1, 2), draft_n=(1,), repeats=1)

    def files(name):
        return len(list((tmp_path / "artefacts" / name).glob("*.joblib")))

    def both(target, draft):
        bench.cached_sweep(target, draft, ps, **grid)
        policy.cached_profile(target, draft, 1, **prof)
        return files("cast_sweep"), files("cast_profile")

    assert both(T, D) == (1, 1)
    assert both(T, D) == (1, 1)                                  # same weights: hits
    T2 = copy.deepcopy(T)                                        # a second copy of the same weights: hits too
    assert both(T2, D) == (1, 1)
    with torch.no_grad():
        next(T2.parameters()).add_(0.5)                          # retrained in place, same object
    assert both(T2, D) == (2, 2)
    assert both(T, tiny(11, layers=1)) == (3, 3)                 # another draft of the same shape
    key = policy.weights_key(T, Draft(D, torch.arange(T.config.vocab_size)))
    assert key != policy.weights_key(T, Draft(D, torch.arange(T.config.vocab_size).flip(0)))   # its vocabulary too


def test_paired_rounds_alternate_and_stay_lossless(pair, prompts):
    """Paired rounds give one CAST / plain ratio per round, their median and range, and CAST equals the plain loop."""
    T, drafts = pair
    profs = cast.bench.profiles(T, drafts["feature"], (1, 2), quick=True)
    got = cast.bench.paired_rounds(T, drafts["feature"], prompts(2), (1, 2), 8, profs, None, rounds=3, progress=False)
    assert set(got) == {1, 2}
    for v in got.values():
        assert len(v["over_plain"]) == 3 and v["lo"] <= v["median"] <= v["hi"]
        assert v["lossless"] is True
        assert v["median"] == pytest.approx(sorted(v["over_plain"])[1])
    with pytest.raises(ValueError, match="rounds"):
        cast.bench.paired_rounds(T, drafts["feature"], prompts(1), (1,), 4, profs, None, rounds=0)
