"""Exists-or-compute caching keyed by a config hash."""
from dataclasses import dataclass

import pytest

from nblib import cache


@dataclass(frozen=True)
class Cfg:
    a: int
    b: tuple = (1, 2)


def test_config_key_is_stable_and_sensitive():
    assert cache.config_key(Cfg(1)) == cache.config_key(Cfg(1))
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
