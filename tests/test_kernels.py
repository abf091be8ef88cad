"""nblib.kernels, the build-and-load machinery of compiled kernels: build once, sha256 check, rebuild with one
warning, clean (None, why) on every failure, the env switch."""
from __future__ import annotations

import ctypes
import hashlib
import warnings

import pytest

from nblib import kernels

SRC = "int nblib_add(int a, int b) { return a + b; }\n"
SYM = {"nblib_add": ([ctypes.c_int, ctypes.c_int], ctypes.c_int)}
needs_cc = pytest.mark.skipif(kernels.compiler() is None or kernels.disabled_reason() != "",
                              reason="no C compiler / kernels turned off")


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """A private nblib cache."""
    monkeypatch.setenv("NBLIB_CACHE", str(tmp_path))
    monkeypatch.delenv(kernels.ENV, raising=False)
    return tmp_path


@needs_cc
def test_builds_once_records_the_sha256_and_loads(cache):
    """The library lands in <cache>/kernels/<name>-<tag>.so with its sha256 beside it; a second load reuses it."""
    lib, why = kernels.load("adder", SRC, SYM)
    assert why == "" and lib.nblib_add(2, 3) == 5
    (so,) = (cache / "kernels").glob("adder-*.so")
    assert kernels.hash_path(so).read_text().strip() == hashlib.sha256(so.read_bytes()).hexdigest()
    mtime = so.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lib2, _ = kernels.load("adder", SRC, SYM)
    assert lib2.nblib_add(4, 5) == 9 and so.stat().st_mtime_ns == mtime
    assert kernels.library_path("adder", SRC + "\n") != so          # an edited source builds a new library


@needs_cc
def test_a_corrupted_library_is_rebuilt_with_one_warning(cache):
    """Truncated bytes (or a missing record) fail the sha256 check: one warning, rebuilt, loads again."""
    kernels.load("adder", SRC, SYM)
    (so,) = (cache / "kernels").glob("adder-*.so")
    cut = cache / "cut.so"
    cut.write_bytes(so.read_bytes()[:1000])
    cut.replace(so)
    assert not kernels.library_matches(so)
    with pytest.warns(UserWarning, match="does not match the sha256 recorded.*rebuilding") as rec:
        lib, why = kernels.load("adder", SRC, SYM)
    assert len([w for w in rec if "sha256" in str(w.message)]) == 1
    assert why == "" and lib.nblib_add(1, 1) == 2 and kernels.library_matches(so)
    kernels.hash_path(so).unlink()
    with pytest.warns(UserWarning, match="sha256"):
        lib, _ = kernels.load("adder", SRC, SYM)
    assert lib is not None and kernels.library_matches(so)


@needs_cc
def test_a_bad_source_or_a_missing_symbol_gives_none_and_why_not_an_exception(cache):
    """A compile error and a symbol the library lacks are reasons, not exceptions; nothing half-built is left."""
    lib, why = kernels.load("broken", "int f( { syntax error", SYM, what="test kernel")
    assert lib is None and why.startswith("compiling the test kernel failed") and "\n" not in why[:60]
    assert not list((cache / "kernels").glob("broken-*"))
    lib, why = kernels.load("adder", SRC, {"nblib_missing": ([], None)})
    assert lib is None and "no function nblib_missing" in why


def test_turned_off_by_the_environment_or_no_compiler(cache, monkeypatch):
    """NBLIB_KERNELS=torch and a missing compiler both give (None, why) naming the cause."""
    monkeypatch.setenv(kernels.ENV, "torch")
    lib, why = kernels.load("adder", SRC, SYM)
    assert lib is None and "NBLIB_KERNELS=torch" in why
    monkeypatch.delenv(kernels.ENV)
    monkeypatch.setattr(kernels, "compiler", lambda: None)
    if kernels.disabled_reason() == "":
        lib, why = kernels.load("adder", SRC, SYM, what="test kernel")
        assert lib is None and "no C compiler" in why and "test kernel" in why
