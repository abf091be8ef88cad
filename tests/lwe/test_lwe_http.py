"""The same judges over an OpenAI-compatible server (`transformers serve` here; vLLM in production)."""
import pytest

from nblib import llm, lwe

pytestmark = pytest.mark.slow


def test_selective_lwe_over_transformers_serve(served_smollm2, tmp_path):
    lm = llm.connect(served_smollm2 + "/v1")
    cases = lwe.stream(lwe.load("hhh"), n=2)
    cfg = lwe.JudgeConfig(batch_size=2, rubric_tokens=16, judge_tokens=12, feedback_tokens=12, update_tokens=24)
    store = lwe.ResponseStore(tmp_path / "store.jsonl")
    rec = lwe.run("selective", lm, cases, cfg, store=store)
    assert rec.status == "complete" and rec.n == 2 and rec.model == lm.name
    k = sum(r["used_lwe"] for r in rec.cases)
    assert rec.generations() == lwe.expected_calls("selective", 2, 2, inconsistent=k)
    assert rec.tokens["judge"]["prompt"] > 0 and rec.tokens["judge"]["completion"] > 0
    for r in rec.cases:          # the server gives no log-probabilities: an unparsed verdict says so
        if r["verdict_from"] == "none":
            assert "needs a local model" in r["fallback_error"]
        else:
            assert r["verdict"] in ("A", "B")
    if k:                          # 24 tokens cannot reach 726 characters: the rewrite is rejected, M kept
        assert rec.meta_history[-1]["reason"].startswith("rejected") or rec.meta_history[-1]["reason"] == "empty"
        assert rec.meta_history[-1]["text"] == lwe.prompts.INITIAL_META_PROMPT
    again = lwe.run("selective", lm, cases, cfg, store=lwe.ResponseStore(tmp_path / "store.jsonl"))
    assert [r["verdict"] for r in again.cases] == [r["verdict"] for r in rec.cases]
    assert again.fresh_wall_s < rec.fresh_wall_s           # answered from the store, not the server
