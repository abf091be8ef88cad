"""The draft's training prompts never include an evaluation prompt; the BIG-bench prompt builder and the training
script's loss mask do what they say."""
from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CAST = ROOT / "data" / "cast"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (CAST / name).open()]


def test_no_evaluation_prompt_is_a_training_prompt():
    train, ev = _rows("train_prompts.jsonl"), _rows("eval_prompts.jsonl")
    assert {r["id"] for r in train}.isdisjoint(r["id"] for r in ev)
    assert {r["prompt"] for r in train}.isdisjoint(r["prompt"] for r in ev)
    assert len({r["id"] for r in train}) == len(train), "training prompt ids repeat"


def test_training_prompts_keep_the_token_drafts_rows_first():
    train = _rows("train_prompts.jsonl")
    assert {r["source"] for r in train[:640]} == {"python-stdlib", "template"}  # scripts/train_draft.py reads these
    later = {r["source"] for r in train[640:]}
    assert later == {"bigbench", "mt-bench", "humaneval"}


def _fake_sdist(path: Path, tasks: dict[str, list[str]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for task, inputs in tasks.items():
            raw = json.dumps({"examples": [{"input": x, "target": "t"} for x in inputs]}).encode()
            info = tarfile.TarInfo("bigbench-1.0.0/bigbench/benchmark_tasks/" + task + "/task.json")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def test_bigbench_prompts_wrap_dedupe_and_cap(tmp_path, monkeypatch):
    bp = _script("build_prompts")
    monkeypatch.setattr(bp, "BIGBENCH_TASKS", [("alpha", "Q: {x}", 2), ("beta/sub", "{x}!", 5)])
    sdist = _fake_sdist(tmp_path / "bb.tar.gz", {"alpha": ["a", "a", "b", "c"], "beta/sub": ["x", " x ", "y"]})
    out = bp.bigbench_prompts(sdist)
    alpha = [r["prompt"] for r in out if r["category"] == "alpha"]
    beta = sorted(r["prompt"] for r in out if r["category"] == "beta")
    assert len(alpha) == 2 and set(alpha) <= {"Q: a", "Q: b", "Q: c"}  # capped at 2 of 3 distinct inputs
    assert beta == ["x!", "y!"]  # " x " and "x" are one input
    assert all(r["source"] == "bigbench" for r in out)
    assert out == bp.bigbench_prompts(sdist)  # seeded


def test_bigbench_prompts_name_a_missing_task(tmp_path, monkeypatch):
    bp = _script("build_prompts")
    monkeypatch.setattr(bp, "BIGBENCH_TASKS", [("alpha", "{x}", 2), ("gone", "{x}", 2)])
    with pytest.raises(FileNotFoundError, match="gone"):
        bp.bigbench_prompts(_fake_sdist(tmp_path / "bb.tar.gz", {"alpha": ["a"]}))


def test_clip_cuts_long_inputs_at_a_boundary():
    bp = _script("build_prompts")
    assert bp._clip("  short  ") == "short"
    long = "word " * 400
    cut = bp._clip(long, 100)
    assert len(cut) <= 102 and cut.endswith(" …") and "wor …" not in cut


def test_training_loss_counts_reply_positions_only():
    te = _script("train_eagle")
    d = 4
    rows = [{"ids": torch.arange(6), "feats": torch.zeros(6, d).half(), "labels": torch.arange(6), "start": 3},
            {"ids": torch.arange(4), "feats": torch.zeros(4, d).half(), "labels": torch.arange(4), "start": 0}]
    lut = torch.arange(10)
    feats, ids, lab, valid = te.collate(rows, lut)
    assert feats.shape == (2, 6, d) and ids.shape == lab.shape == valid.shape == (2, 6)
    assert valid[0].tolist() == [False, False, False, True, True, True]  # prompt positions are context only
    assert valid[1].tolist() == [True, True, True, True, False, False]   # plain text counts; padding never
    assert lab[1, 4:].tolist() == [-100, -100]


def test_chat_prompts_are_unseen_and_load():
    from nblib.cast import bench

    chat, train, ev = _rows("chat_prompts.jsonl"), _rows("train_prompts.jsonl"), _rows("eval_prompts.jsonl")
    seen = {r["prompt"] for r in train} | {r["prompt"] for r in ev}
    assert len(chat) == 8 and not seen & {r["prompt"] for r in chat}  # no draft trained on them
    rows = bench.prompts_from(CAST / "chat_prompts.jsonl", 3)
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in chat[:3]] and rows[0]["source"] == "chat"


def test_prompt_file_errors_say_what_is_wrong(tmp_path):
    from nblib.cast import bench

    with pytest.raises(FileNotFoundError, match="no prompt file"):
        bench.prompts_from(tmp_path / "missing.jsonl", 4)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"text": "no prompt key"}\n')
    with pytest.raises(ValueError, match="line 2"):
        bench.prompts_from(bad, 4)
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="not JSON"):
        bench.prompts_from(bad, 4)
    ok = tmp_path / "mine.jsonl"
    ok.write_text('{"prompt": "a"}\n\n{"prompt": "b", "source": "own"}\n')
    assert [(r["prompt"], r["source"]) for r in bench.prompts_from(ok, 8)] == [("a", "mine"), ("b", "own")]
