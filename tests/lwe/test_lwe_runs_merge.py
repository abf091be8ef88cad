"""scripts/lwe_runs.py --merge: runs built concurrently (one runs file each) fold into one file, nothing lost."""
import importlib.util
from pathlib import Path

import pytest

from nblib import lwe
from nblib.lwe import bench

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lwe_runs.py"


def _script():
    spec = importlib.util.spec_from_file_location("lwe_runs", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rec(n, method):
    rows = [{"id": str(i), "better": "A", "verdict": "A", "swap_verdict": "A", "verdict_from": "parse",
             "swap_verdict_from": "parse", "outcome": "parsed", "swap_outcome": "parsed"} for i in range(n)]
    return lwe.RunRecord(method=method, model="m", config={"batch_size": 4, "run_swap": True}, cases=rows,
                         calls={"judge": 2 * n})


def _save(path, recs, model="smollm2"):
    jobs = {k: {"n": r.n, "wall_s": 1.0, "command": f"build {k}"} for k, r in recs.items()}
    return bench.save_runs(path, recs, {"model": model, "set": "hhh", "seed": 1, "n": 1, "jobs": jobs})


def test_merge_keeps_every_run_and_its_provenance(tmp_path):
    out = _save(tmp_path / "runs.json", {"vanilla": _rec(24, "vanilla"), "logprob": _rec(120, "logprob")})
    other = _save(tmp_path / "p2.json", {"vanilla": _rec(120, "vanilla"), "ssp": _rec(48, "ssp")})
    assert _script().main(["--out", str(out), "--store", str(tmp_path / "store.jsonl"), "--merge", str(other)]) == 0
    meta, recs = bench.load_runs(out)
    assert {k: r.n for k, r in recs.items()} == {"vanilla": 120, "logprob": 120, "ssp": 48}
    assert meta["jobs"]["vanilla"]["n"] == 120 and meta["jobs"]["logprob"]["n"] == 120
    assert meta["jobs"]["ssp"]["command"] == "build ssp" and meta["n"] == 120


def test_merge_refuses_another_model(tmp_path):
    out = _save(tmp_path / "runs.json", {"vanilla": _rec(4, "vanilla")})
    other = _save(tmp_path / "p2.json", {"ssp": _rec(4, "ssp")}, model="gemma")
    with pytest.raises(SystemExit, match="model"):
        _script().main(["--out", str(out), "--store", str(tmp_path / "store.jsonl"), "--merge", str(other)])


def test_merge_drops_the_shared_store_repeated_lines(tmp_path):
    """Two builds on one store write a call they both made twice; --merge keeps one line per key, rows intact."""
    store = tmp_path / "store.jsonl"
    a = lwe.ResponseStore(store)
    a.put("k1", {"kind": "generate", "text": "x"})
    a.put("k2", {"kind": "score", "margin": 0.5})
    lwe.ResponseStore(store).put("k1", {"kind": "generate", "text": "x"})   # the other build, same call
    assert len(store.read_text().splitlines()) == 3
    out = _save(tmp_path / "runs.json", {"vanilla": _rec(4, "vanilla")})
    other = _save(tmp_path / "p2.json", {"ssp": _rec(4, "ssp")})
    assert _script().main(["--out", str(out), "--store", str(store), "--merge", str(other)]) == 0
    back = lwe.ResponseStore(store, write=False)
    assert len(store.read_text().splitlines()) == len(back) == 2 and back.get("k2")["margin"] == 0.5
    assert lwe.ResponseStore(store).compact() == 0
