"""The build scripts check the pinned sha256 of the downloaded bigbench sdist before they reuse a copy."""
from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import pytest

from nblib import cache

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_bigbench_pin_matches_the_committed_subset_header():
    import json

    header = json.loads((Path(__file__).resolve().parents[1] / "data" / "taskworld" /
                         "bigbench_arithmetic_subset.jsonl").open().readline())
    assert cache.SOURCE_ARCHIVES["bigbench==1.0.0"][1] == header["sdist_sha256"]


def test_build_bigbench_subset_refuses_a_copy_with_another_hash(tmp_path, monkeypatch):
    bb = _script("build_bigbench_subset")
    ran = []
    monkeypatch.setattr(cache.subprocess, "run", lambda *a, **k: ran.append(a))  # never download in a test
    wrong = tmp_path / "bigbench-1.0.0.tar.gz"
    wrong.write_bytes(b"a truncated download")
    with pytest.raises(ValueError, match="not the pinned file"):
        bb.fetch(wrong)
    other = tmp_path / "renamed.tar.gz"
    other.write_bytes(b"something else")
    with pytest.raises(ValueError, match="expected " + cache.SOURCE_ARCHIVES["bigbench==1.0.0"][1]):
        bb.fetch(other)
    with pytest.raises(SystemExit, match="not the pinned file"):
        bb.main(["--sdist", str(wrong), "--out", str(tmp_path / "out.jsonl")])
    assert not ran and not (tmp_path / "out.jsonl").exists()


def test_a_missing_copy_is_downloaded_then_checked(tmp_path, monkeypatch):
    bb = _script("build_bigbench_subset")
    calls = []

    def fake_pip(cmd, check):
        calls.append(cmd)
        (tmp_path / "bigbench-1.0.0.tar.gz").write_bytes(b"a tampered mirror")

    monkeypatch.setattr(cache.subprocess, "run", fake_pip)
    with pytest.raises(ValueError, match="not the pinned file"):
        bb.fetch(tmp_path / "bigbench-1.0.0.tar.gz")
    assert calls and calls[0][-5:] == ["--no-binary", ":all:", "bigbench==1.0.0", "-d", str(tmp_path)]


def test_train_koala_data_step_refuses_a_copy_with_another_hash(tmp_path, monkeypatch):
    tk = _script("train_koala")
    monkeypatch.setattr(cache.subprocess, "run", lambda *a, **k: pytest.fail("no download in a test"))
    (tmp_path / "bigbench-1.0.0.tar.gz").write_bytes(b"not the sdist")
    monkeypatch.setattr(tk, "SDIST", tmp_path / "bigbench-1.0.0.tar.gz")
    monkeypatch.setattr(tk, "OUT", tmp_path)
    with pytest.raises(SystemExit, match="not the pinned file"):
        tk.step_data(types.SimpleNamespace(n_train=10, n_test=10))
    assert not (tmp_path / "mnist_subset.npz").exists()


def test_build_mnist_subset_checks_the_archive(tmp_path):
    from nblib.koala import tiny

    f = tmp_path / "bigbench-1.0.0.tar.gz"
    f.write_bytes(b"not the sdist")
    with pytest.raises(ValueError, match="not the pinned file"):
        tiny.build_mnist_subset(f)
