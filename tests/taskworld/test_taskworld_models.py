"""The first ladder (v1: tiny, mid, large, spec-*): tokenizer, checkpoints, generation, traces, the targets of issue 3.

The v2 ladder's targets are in test_taskworld_v2.py.

The targets are asserted on the committed checkpoints over a fixed seeded
held-out sample (test split, seed 0) with batched KV-cache generation.
"""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from nblib import taskworld
from nblib.cost import measure_flops
from nblib.zoo import n_params

N_EVAL = 400  # held-out problems for the accuracy targets
LADDER = taskworld.models.LADDER_V1
SPECIALISTS = taskworld.models.SPECIALISTS_V1
ALL = list(LADDER) + list(SPECIALISTS.values())


@pytest.fixture(scope="module")
def held_out():
    return taskworld.problems.problems("test", N_EVAL, seed=0)


@pytest.fixture(scope="module")
def traces(held_out):
    return {name: taskworld.traces.trace_problems(taskworld.load_model(name), held_out) for name in LADDER}


def test_tokenizer_round_trip():
    p = taskworld.problems.problems("test", 1)[0]
    text = taskworld.prompt_of(p) + p.solution
    ids = taskworld.encode(text)
    assert ids[0] == taskworld.models.BOS and taskworld.decode(ids) == text and len(ids) == len(text) + 1
    with pytest.raises(taskworld.MalformedProblem, match="not in the task vocabulary"):
        taskworld.encode("12 plus 7")


def test_every_model_is_committed_small_and_loads():
    assert set(ALL) <= set(taskworld.available_models())
    total = sum((taskworld.models.MODELS_DIR / n / "model.safetensors").stat().st_size for n in ALL)
    assert total <= 40e6, f"checkpoints take {total / 1e6:.1f} MB"   # target (issue 3): data/ stays small
    sizes = [n_params(taskworld.load_model(n)) for n in LADDER]
    assert sizes == sorted(sizes) and sizes[0] < 0.3e6 and sizes[-1] > 1e6, sizes   # target (issue 3): a real ladder
    for n in ALL:
        info = taskworld.model_info(n)
        assert info["params"] == n_params(taskworld.load_model(n))   # the record describes the weights shipped
        assert info["spec"]["name"] == n and info["log"], n


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(taskworld.UnknownModel, match="no task model named 'huge'.*available: .*tiny"):
        taskworld.load_model("huge")


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    shutil.copytree(taskworld.models.MODELS_DIR / "tiny", tmp_path / "bad")
    cfg = json.loads((tmp_path / "bad" / "config.json").read_text())
    cfg["hidden_size"] *= 2
    (tmp_path / "bad" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(taskworld.CheckpointMismatch, match="do not match config.json"):
        taskworld.load_model("bad", root=tmp_path)
    cfg["hidden_size"] //= 2
    cfg["vocab_size"] += 1
    (tmp_path / "bad" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(taskworld.CheckpointMismatch, match="vocab_size"):
        taskworld.load_model("bad", root=tmp_path)


@pytest.mark.parametrize("file, damage", [
    ("model.safetensors", lambda b: b[: len(b) // 2]),          # truncated mid-tensor
    ("model.safetensors", lambda b: b[:6]),                     # cut inside the header length
    ("model.safetensors", lambda b: b"<html>not weights</html>"),
    ("config.json", lambda b: b[: len(b) // 2]),                # cut JSON
    ("config.json", lambda b: b"[1, 2]"),                       # JSON, but not an object
    ("config.json", lambda b: b'{"hidden_size": "big"}'),      # an object no model can be built from
    ("train.json", lambda b: b[: len(b) // 3]),
    ("train.json", lambda b: b"\xff\xfe\x00"),                  # not text
])
def test_a_corrupt_checkpoint_names_its_file_and_rebuild_command(tmp_path, file, damage):
    """A damaged copy of a committed checkpoint raises CorruptArtefact naming the file and the training command,
    from load_model and (for train.json) model_info, never a bare SafetensorError / JSONDecodeError."""
    from nblib.cache import CorruptArtefact

    shutil.copytree(taskworld.models.MODELS_DIR / "tiny", tmp_path / "tiny")
    path = tmp_path / "tiny" / file
    path.write_bytes(damage(path.read_bytes()))
    want = rf"{re.escape(str(path))}.*rebuild it with: python scripts/train_taskworld\.py tiny"
    with pytest.raises(CorruptArtefact, match=want):
        taskworld.load_model("tiny", root=tmp_path)
    if file == "train.json":
        with pytest.raises(CorruptArtefact, match=want):
            taskworld.model_info("tiny", root=tmp_path)


def test_batched_generation_equals_one_by_one(held_out):
    model = taskworld.load_model("mid")
    probs = held_out[:12]
    batched = taskworld.solve(model, probs, batch_size=12)
    single = [taskworld.solve(model, [p], batch_size=1)[0] for p in probs]
    assert [g.text for g in batched] == [g.text for g in single]
    np.testing.assert_allclose(np.concatenate([g.logprobs for g in batched]),
                               np.concatenate([g.logprobs for g in single]), atol=1e-4)


def test_generation_matches_transformers_generate(held_out):
    model = taskworld.load_model("large")
    p = held_out[0]
    ids = torch.tensor([taskworld.encode(taskworld.prompt_of(p))])
    ref = model.generate(ids, max_new_tokens=60, do_sample=False, eos_token_id=taskworld.models.EOS, pad_token_id=taskworld.models.PAD)
    ours = taskworld.solve(model, [p])[0]
    assert taskworld.decode(ref[0, ids.shape[1]:].tolist()) == ours.text


@pytest.mark.parametrize("name", ALL)
def test_analytic_flops_per_token_equal_measured(name):
    analytic, measured = taskworld.flops_per_token(taskworld.load_model(name), past=40)
    assert analytic == measured


def test_generation_flops_equal_measured(held_out):
    model = taskworld.load_model("tiny")
    gens, measured = measure_flops(lambda: taskworld.solve(model, held_out[:1], batch_size=1))
    assert gens[0].flops == measured


def test_held_out_accuracy_ladder(traces):
    acc = {n: float(np.mean([t.correct for t in traces[n]])) for n in LADDER}
    assert acc["large"] >= 0.90, acc   # targets (issue 3): the ladder has real quality gaps
    assert acc["tiny"] <= 0.60, acc
    assert acc["tiny"] < acc["mid"] < acc["large"], acc


def test_small_model_step_confidence_auroc(traces):
    assert taskworld.step_auroc(traces["tiny"]) >= 0.75   # target (issue 3): confidence separates right from wrong


def test_traces_are_consistent(traces, held_out):
    for t, p in zip(traces["mid"][:50], held_out):
        assert t.problem == p.text and "\n".join(s.text for s in t.steps) == t.text.strip()
        assert sum(s.tokens for s in t.steps) == t.new_tokens
        assert sum(s.flops for s in t.steps) == t.flops
        assert t.correct == taskworld.problems.check_answer(p, t.text)
        assert all(0 < s.confidence <= s.first_prob + 1e-9 for s in t.steps)  # min over the line <= its first char
    frame = taskworld.trace_frame(traces["tiny"])
    assert {"valid", "confidence", "flops", "kind"} <= set(frame.columns)


def test_trace_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("NBLIB_CACHE", str(tmp_path))
    first = taskworld.trace("tiny", n=20, verbose=False)
    files = list((tmp_path / "artefacts" / "taskworld_trace").glob("*.joblib"))
    assert len(files) == 1
    # a second call must not compute again: loading the model now fails the test
    monkeypatch.setattr(taskworld.traces, "load_model", lambda *a, **k: pytest.fail("recomputed: not a cache hit"))
    again = taskworld.trace("tiny", n=20, verbose=False)
    assert [t.text for t in again] == [t.text for t in first]


def test_specialists_win_on_their_own_kind(held_out):
    mat = taskworld.specialist_matrix(list(SPECIALISTS.values()), held_out[:200])
    for op, name in SPECIALISTS.items():
        kind = taskworld.problems.KIND_NAMES[op]
        others = mat.drop(index=name)[kind]
        assert mat.loc[name, kind] >= others.max() + 0.10, mat


def test_checkpoint_hashes_match_their_training_record():
    import hashlib

    for n in ALL:
        data = (taskworld.models.MODELS_DIR / n / "model.safetensors").read_bytes()
        assert hashlib.sha256(data).hexdigest() == taskworld.model_info(n)["sha256"], n


def test_committed_checkpoints_match_the_training_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "train_taskworld.py"
    spec = importlib.util.spec_from_file_location("train_taskworld", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert set(mod.SPECS) == set(taskworld.available_models())
    defaults = {"select_max_val_acc": None, "init_from": None, "bucket": 1}  # fields added after the v1 runs
    for n, s in mod.SPECS.items():
        plain = json.loads(json.dumps(taskworld.training.to_plain(s)))
        recorded = {**defaults, **taskworld.model_info(n)["spec"]}
        assert plain == recorded, n


def test_calibration_table_bins_by_confidence():
    import pandas as pd

    from nblib.taskworld import calibration_table

    steps = pd.DataFrame({"confidence": [0.05, 0.15, 0.95, 0.99, 0.91], "valid": [False, True, True, True, False]})
    t = calibration_table(steps, n_bins=10)
    assert list(t["steps"]) == [1, 1, 3]                 # three non-empty bins: [0, .1], (.1, .2], (.9, 1]
    assert t["right"].iloc[-1] == pytest.approx(2 / 3) and t["confidence"].iloc[0] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="n_bins"):
        calibration_table(steps, n_bins=0)
