"""Exists-or-compute caching keyed by a config hash and the code version; pinned sha256 checks."""
from dataclasses import dataclass

import pytest

from nblib import cache


@dataclass(frozen=True)
class Cfg:
    a: int
    b: tuple = (1, 2)


def test_config_key_is_stable_and_sensitive():
    # regression values recorded from nblib.cache.config_key at commit 7f074d0 (sha256 of the sorted JSON, 12 hex):
    # a change here silently orphans every user's cache, so it must be deliberate
    assert cache.config_key(Cfg(1)) == "f8b7ae5c41bc"
    assert cache.config_key({"x": 1, "y": 2}) == "8ce18b46435a"
    assert cache.config_key(Cfg(1)) != cache.config_key(Cfg(2))
    assert cache.config_key({"x": 1, "y": 2}) == cache.config_key({"y": 2, "x": 1})
    with pytest.raises(TypeError, match="cannot hash"):
        cache.config_key(object())


def test_cached_computes_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"v": [1, 2, 3]}

    assert cache.cached("t", Cfg(1), compute) == {"v": [1, 2, 3]}
    assert cache.cached("t", Cfg(1), compute) == {"v": [1, 2, 3]}
    assert len(calls) == 1
    cache.cached("t", Cfg(2), compute)
    assert len(calls) == 2
    out = capsys.readouterr().out
    assert "computed" in out and "hit" in out
    assert cache.cache_dir() == tmp_path


def _f_one():
    return 1


def _f_two():
    return 2


def _counting(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    return calls, compute


def test_a_changed_version_misses_the_cache(tmp_path, monkeypatch):
    calls, compute = _counting(tmp_path, monkeypatch)
    cache.cached("v", Cfg(1), compute, version=1, verbose=False)
    cache.cached("v", Cfg(1), compute, version=1, verbose=False)
    assert len(calls) == 1
    cache.cached("v", Cfg(1), compute, version=2, verbose=False)
    assert len(calls) == 2


def test_a_changed_function_source_misses_the_cache(tmp_path, monkeypatch):
    calls, compute = _counting(tmp_path, monkeypatch)
    assert cache.code_version(_f_one) != cache.code_version(_f_two)
    cache.cached("c", Cfg(1), compute, code=_f_one, verbose=False)
    cache.cached("c", Cfg(1), compute, code=_f_two, verbose=False)  # another body: recomputed
    assert len(calls) == 2
    cache.cached("c", Cfg(1), compute, code=(_f_one,), verbose=False)  # the same code: a hit
    cache.cached("c", Cfg(1), compute, code=_f_two, verbose=False)
    assert len(calls) == 2
    cache.cached("c", Cfg(1), compute, code=(_f_one, _f_two), verbose=False)  # code is a tuple of dependencies
    assert len(calls) == 3


def test_the_same_code_hits_and_the_sidecar_says_what_made_it(tmp_path, monkeypatch):
    import json

    calls, compute = _counting(tmp_path, monkeypatch)
    code = (_f_one, cache.config_key, cache)  # functions and modules
    assert cache.cached("s", {"x": 1}, compute, code=code, version="a", verbose=False) == 1
    assert cache.cached("s", {"x": 1}, compute, code=code, version="a", verbose=False) == 1
    assert len(calls) == 1
    (art,) = (tmp_path / "artefacts" / "s").glob("*.joblib")
    meta = json.loads(art.with_suffix(".json").read_text())
    assert meta["name"] == "s" and meta["config"] == {"x": 1} and meta["version"] == "a"
    assert meta["code_hash"] == cache.code_version(code) and meta["created"]
    assert meta["code"][0].endswith("test_cache._f_one") and meta["code"][1:] == ["nblib.cache.config_key", "nblib.cache"]
    with pytest.raises(TypeError, match="cannot read the source"):
        cache.code_version(len)


def test_verify_sha256(tmp_path):
    import hashlib

    f = tmp_path / "archive.tar.gz"
    f.write_bytes(b"some bytes")
    good = hashlib.sha256(b"some bytes").hexdigest()
    assert cache.sha256_file(f) == good
    assert cache.verify_sha256(f, good) == f
    assert cache.verify_sha256(f, good.upper()) == f
    with pytest.raises(ValueError, match="expected 0{64}.*delete it"):
        cache.verify_sha256(f, "0" * 64)
    with pytest.raises(FileNotFoundError):
        cache.verify_sha256(tmp_path / "missing.tar.gz", good)
    with pytest.raises(KeyError, match="no pinned sha256"):
        cache.fetch_source_archive("unknown==0.1", tmp_path)


def test_a_pinned_archive_with_another_hash_is_not_reused(tmp_path):
    fname, _ = cache.SOURCE_ARCHIVES["bigbench==1.0.0"]
    (tmp_path / fname).write_bytes(b"not the sdist")
    with pytest.raises(ValueError, match="not the pinned file"):
        cache.fetch_source_archive("bigbench==1.0.0", tmp_path)


# ----------------------------------------------------------------------------- keys from content (issue 23)
def _fake_package(root, name="fakepkg_keys"):
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "top.py").write_text("def run():\n    from . import callee\n    return callee.value()\n")
    (pkg / "callee.py").write_text("def value():\n    return 1\n")
    (pkg / "unrelated.py").write_text("X = 1\n")
    return pkg


def _rewrite(path, text):
    import os

    st = path.stat()
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new mtime even on a coarse clock


def test_editing_a_callee_that_is_not_named_in_code_misses_the_cache(tmp_path, monkeypatch):
    import importlib
    import sys

    pkg = _fake_package(tmp_path / "src")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setattr(cache, "TRACKED_PACKAGES", (*cache.TRACKED_PACKAGES, "fakepkg_keys"))
    top = importlib.import_module("fakepkg_keys.top")
    try:
        assert cache.reachable_modules(["fakepkg_keys.top"]) == ["fakepkg_keys.callee", "fakepkg_keys.top"]
        calls, compute = _counting(tmp_path / "cache", monkeypatch)
        before = cache.code_version(top.run)
        cache.cached("k", Cfg(1), compute, code=top.run, verbose=False)
        _rewrite(pkg / "unrelated.py", "X = 2\n")                       # not reachable: still a hit
        assert cache.code_version(top.run) == before
        cache.cached("k", Cfg(1), compute, code=top.run, verbose=False)
        assert len(calls) == 1
        _rewrite(pkg / "callee.py", "def value():\n    return 2\n")    # only the callee changed
        assert cache.code_version(top.run) != before
        cache.cached("k", Cfg(1), compute, code=top.run, verbose=False)
        assert len(calls) == 2
    finally:
        for m in [m for m in sys.modules if m.startswith("fakepkg_keys")]:
            del sys.modules[m]


def test_the_step_table_code_reaches_the_generation_code_its_pool_calls():
    from nblib.hierrouter import table

    reach = cache.reachable_modules([table.StepCache.__module__])
    assert "nblib.taskworld.generation" in reach and "nblib.hierrouter.pool" in reach
    assert "nblib.cast.tree" not in reach                       # only what it imports, not the whole package


def _tiny_module(seed):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))


def test_weights_fingerprint_follows_the_weights_not_the_object():
    import torch

    a, b, a2 = _tiny_module(0), _tiny_module(1), _tiny_module(0)
    assert cache.weights_fingerprint(a) == cache.weights_fingerprint(a2)
    assert cache.weights_fingerprint(a) != cache.weights_fingerprint(b)
    before = cache.weights_fingerprint(a)
    with torch.no_grad():
        a[0].weight[0, 0] += 1e-3                              # an in-place edit is seen despite the memo
    assert cache.weights_fingerprint(a) != before
    half = _tiny_module(0).to(torch.bfloat16)
    assert cache.weights_fingerprint(half) != cache.weights_fingerprint(a2)   # the dtype is in the key
    with pytest.raises(TypeError, match="torch.nn.Module"):
        cache.weights_fingerprint("tiny")


def test_file_fingerprint_follows_the_bytes(tmp_path):
    p = tmp_path / "w.bin"
    p.write_bytes(b"abc")
    first = cache.file_fingerprint(p)
    _rewrite(p, "abd")
    assert cache.file_fingerprint(p) != first


# ----------------------------------------------------------------------------- corrupt artefacts (issue 23)
def test_a_truncated_artefact_names_its_file_and_the_rebuild_command(tmp_path):
    import torch
    from safetensors.torch import save_file

    w = tmp_path / "policy.safetensors"
    save_file({"x": torch.zeros(64)}, str(w))
    assert cache.read_safetensors(w, "python scripts/x.py")["x"].shape == (64,)
    w.write_bytes(w.read_bytes()[:20])                                  # a kill mid-copy
    with pytest.raises(cache.CorruptArtefact, match=r"policy\.safetensors is not a readable safetensors file.*"
                                                    r"rebuild it with: python scripts/x\.py"):
        cache.read_safetensors(w, "python scripts/x.py")
    j = tmp_path / "policy.json"
    j.write_text('{"obs_dim": 4, "pool": ["a"')
    with pytest.raises(cache.CorruptArtefact, match=r"policy\.json is not a readable JSON file.*scripts/x\.py"):
        cache.read_json(j, "python scripts/x.py")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"a": 1}\n\n{"a": 2, "b": "cut\n{"a": 3}\n')
    with pytest.raises(cache.CorruptArtefact, match=r"rows\.jsonl, line 3, is not JSON.*scripts/x\.py"):
        cache.read_jsonl(rows, "python scripts/x.py")
    with pytest.raises(FileNotFoundError, match="scripts/x.py"):
        cache.read_json(tmp_path / "nope.json", "python scripts/x.py")


def test_shipped_loaders_report_corrupt_files_with_their_rebuild_script(tmp_path):
    import shutil

    from nblib import hierrouter as H
    from nblib import lwe

    src = H.bench.policy_file(0.1, 0)
    w = tmp_path / src.name
    shutil.copy(src, w)
    shutil.copy(src.with_suffix(".json"), w.with_suffix(".json"))
    H.Router.load(w)                                                    # the intact copy loads
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(cache.CorruptArtefact, match=r"hierrouter_train\.py"):
        H.Router.load(w)
    bad = tmp_path / "hhh_pairs.jsonl"
    bad.write_text('{"source": "x"}\n{"id": "1", "question": "q", "outp\n')
    with pytest.raises(cache.CorruptArtefact, match=r"hhh_pairs\.jsonl, line 2.*build_lwe_data\.py"):
        lwe.data.read_jsonl(bad)
