"""Unparseable verdicts, empty replies and an unreachable server: one recorded outcome each, never a crash,
and a stopped run resumes from its response store without losing a result."""
import socket

import pytest

from nblib import llm, lwe


def test_unparseable_verdict_falls_back_to_log_probabilities(scripted, cases):
    fake = scripted(judge="garbage")
    rec = lwe.run("vanilla", fake, cases)
    assert all(r["outcome"] == "unparseable" and r["verdict_from"] == "logprob" for r in rec.cases)
    # the fake scorer prefers the first-shown answer by the same margin in both orders: averaged, no preference
    # for a position survives, so the two orders' verdicts agree with each other
    assert all(r["swap_verdict"] == lwe.flip(r["verdict"]) for r in rec.cases)
    assert rec.calls["score"] == 2 * len(cases) == len(fake.scores)
    off = lwe.run("vanilla", scripted(judge="garbage"), cases, lwe.JudgeConfig(fallback=False))
    assert all(r["verdict"] is None and r["verdict_from"] == "none" for r in off.cases)
    assert lwe.summarize(off)["accuracy"] == 0.0 and off.calls.get("score", 0) == 0


def test_unparseable_vanilla_counts_as_inconsistent_for_selective(scripted, cases):
    rec = lwe.run("selective", scripted(judge="garbage"), cases)
    assert all(r["used_lwe"] for r in rec.cases)
    assert lwe.summarize(rec)["inconsistent_share"] == 1.0


def test_empty_response_is_recorded_not_fatal(scripted, cases):
    rec = lwe.run("ssp", scripted(judge="empty"), cases)
    assert rec.status == "complete" and rec.n == len(cases)
    assert all(r["outcome"] == "empty" and r["swap_outcome"] == "empty" for r in rec.cases)
    assert all(r["verdict_from"] == "logprob" for r in rec.cases)


def test_empty_rewrite_is_rejected(scripted, cases):
    rec = lwe.run("lwe", scripted(update_chars=0), cases)
    assert all(h["reason"] == "empty" and not h["accepted"] for h in rec.meta_history[1:])
    assert rec.meta_history[-1]["text"] == lwe.prompts.INITIAL_META_PROMPT


def test_server_dying_mid_run_stops_cleanly_and_resumes_from_the_store(scripted, cases, tmp_path):
    path = tmp_path / "store.jsonl"
    dying = scripted(judge="always_a", fail_after=23)
    rec = lwe.run("lwe", dying, cases, store=lwe.ResponseStore(path))
    assert rec.status.startswith("stopped after") and "re-run to resume" in rec.status
    assert 0 < rec.n < len(cases)
    assert "cannot reach the server" in rec.errors[-1] and len(rec.errors) == 3
    done = len(dying.calls)
    # a fresh process: the store is read back from the file, only the missing calls are made
    fresh = scripted(judge="always_a")
    resumed = lwe.run("lwe", fresh, cases, store=lwe.ResponseStore(path))
    whole = lwe.run("lwe", scripted(judge="always_a"), cases)
    assert resumed.status == "complete"
    assert len(fresh.calls) == whole.generations() - done
    assert [r["verdict"] for r in resumed.cases] == [r["verdict"] for r in whole.cases]
    assert [h["text"] for h in resumed.meta_history] == [h["text"] for h in whole.meta_history]
    assert resumed.generations() == whole.generations()          # cached calls still count as calls


def test_a_cut_line_in_the_store_is_skipped(tmp_path):
    path = tmp_path / "s.jsonl"
    store = lwe.ResponseStore(path)
    store.put("k1", {"text": "x"})
    with open(path, "a") as f:
        f.write('{"key": "k2", "text": "cut by a ki')
    with pytest.warns(RuntimeWarning, match="skipped 1 unreadable line"):
        again = lwe.ResponseStore(path)
    assert len(again) == 1 and again.get("k1")["text"] == "x"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_http_server_is_a_recorded_stop(cases):
    lm = llm.HTTPLLM(f"http://127.0.0.1:{_free_port()}/v1", model="nobody", timeout_s=2)
    rec = lwe.run("selective", lm, cases, max_errors=2)
    assert rec.n == 0 and rec.status.startswith("stopped after 0 of")
    assert all("cannot reach the server" in e for e in rec.errors)
    assert rec.calls == {"judge": 2}
    assert lwe.summarize(rec)["n"] == 0


def test_fallback_needs_a_local_model(cases):
    class NoScores:
        name = "server-without-logprobs"

        def generate(self, prompt, max_new_tokens=64, temperature=0.0, stop=None, seed=None):
            return llm.Generation("no verdict", [], None, llm.Usage(1, 1, 0.0, 1))

    rec = lwe.run("vanilla", NoScores(), cases[:2])
    assert rec.status == "complete"
    assert all(r["verdict"] is None and "needs a local model" in r["fallback_error"] for r in rec.cases)
    with pytest.raises(llm.LogprobsUnavailable, match="local model"):
        lwe.backend.choice_logprobs(NoScores(), [{"role": "user", "content": "x"}], "[[")


def test_max_errors_must_be_positive(scripted):
    with pytest.raises(ValueError, match="max_errors"):
        lwe.Caller(scripted(), max_errors=0)


# ----------------------------------------------------------------------------- issue 23
def test_a_cut_line_is_reported_and_the_next_append_starts_on_a_fresh_line(tmp_path):
    path = tmp_path / "s.jsonl"
    store = lwe.ResponseStore(path)
    store.put("k1", {"text": "x"})
    with open(path, "a") as f:
        f.write('{"key": "k2", "text": "cut by a ki')           # a kill mid-write: no newline
    with pytest.warns(RuntimeWarning, match=r"s\.jsonl: skipped 1 unreadable line\(s\) \(line 2\)"):
        again = lwe.ResponseStore(path)
    assert again.skipped == [2]
    again.put("k3", {"text": "z"})                             # the paid call after the cut line is kept
    with pytest.warns(RuntimeWarning, match="skipped 1"):
        third = lwe.ResponseStore(path)
    assert third.get("k1")["text"] == "x" and third.get("k3")["text"] == "z" and len(third) == 2


def _local(model, char_tokenizer, name="local"):
    import copy

    tok = copy.deepcopy(char_tokenizer)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    return llm.LocalLLM(model, tok, name=name)


def test_two_models_with_one_name_do_not_share_answers(cases, char_tokenizer):
    """Issue 23: the store keys on the weights, not on the label "local"."""
    import torch

    torch.manual_seed(1)
    from transformers import LlamaConfig, LlamaForCausalLM

    def model(seed):
        torch.manual_seed(seed)
        return LlamaForCausalLM(LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                            num_key_value_heads=1, intermediate_size=64, vocab_size=97,
                                            max_position_embeddings=4096, tie_word_embeddings=True)).eval()

    store = lwe.ResponseStore()
    cfg = lwe.JudgeConfig(judge_tokens=2)
    first = lwe.run("vanilla", _local(model(0), char_tokenizer), cases[:2], cfg, store=store)
    n = len(store)
    assert n > 0
    again = lwe.run("vanilla", _local(model(0), char_tokenizer), cases[:2], cfg, store=store)
    assert len(store) == n                                     # the same weights: every answer from the store
    other = lwe.run("vanilla", _local(model(1), char_tokenizer), cases[:2], cfg, store=store)
    assert len(store) == 2 * n                                 # other weights, same name: every call made
    assert first.model == again.model == other.model == "local"


def test_the_logprob_judge_refuses_a_backend_without_logprobs_before_any_call(cases):
    lm = llm.HTTPLLM(f"http://127.0.0.1:{_free_port()}/v1", model="served", timeout_s=2)
    with pytest.raises(llm.LogprobsUnavailable, match="needs a local model"):
        lwe.run("logprob", lm, cases)


def test_run_refuses_a_model_name_string_and_bad_arguments(cases, scripted):
    with pytest.raises(TypeError, match=r"not the string 'smollm2'.*connect\('smollm2'\)"):
        lwe.run("vanilla", "smollm2", cases)
    with pytest.raises(ValueError, match=r"method must be one of \['vanilla'"):
        lwe.run("judge", scripted(), cases)
    with pytest.raises(ValueError, match="no cases"):
        lwe.run("vanilla", scripted(), [])
    with pytest.raises(TypeError, match="lwe.Case"):
        lwe.run("vanilla", scripted(), ["a case"])
