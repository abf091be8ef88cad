"""One protocol for language models: local transformers and an OpenAI-compatible server."""
import socket

import pytest
import torch

from nblib import llm


@pytest.fixture()
def lm(tiny_model, char_tokenizer):
    return llm.LocalLLM(tiny_model, char_tokenizer, name="tiny")


def test_greedy_matches_generate_and_logprobs_are_real(lm, tiny_model, char_tokenizer):
    g = lm.generate("hello", max_new_tokens=6)
    ids = char_tokenizer("hello", return_tensors="pt")["input_ids"]
    seq, ref = ids[0].tolist(), []             # an independent greedy loop: argmax of a full forward each step
    with torch.no_grad():
        for _ in range(6):
            nxt = int(tiny_model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
            ref.append(nxt)
            seq.append(nxt)
            if nxt == char_tokenizer.eos_token_id:
                break
    n = len(g.token_ids)
    assert g.token_ids == ref
    assert g.finish_reason == ("stop" if ref[-1] == char_tokenizer.eos_token_id else "length")
    assert len(g.logprobs) == len(g.tokens) == n
    # the log-probabilities are the model's own: recompute them teacher-forced
    full = torch.tensor([ids[0].tolist() + g.token_ids])
    logp = torch.log_softmax(tiny_model(input_ids=full).logits[0, ids.shape[1] - 1:-1], -1)
    expect = logp.gather(-1, torch.tensor(g.token_ids)[:, None]).squeeze(-1)
    assert torch.allclose(torch.tensor(g.logprobs), expect, atol=1e-4)
    assert g.usage.prompt_tokens == 5 and g.usage.completion_tokens == n and g.usage.calls == 1


def test_batch_equals_one_by_one(lm):
    prompts = ["abc", "hello world", "x"]
    batch = lm.generate_batch(prompts, max_new_tokens=5)
    for p, b in zip(prompts, batch):
        assert lm.generate(p, max_new_tokens=5).token_ids == b.token_ids


def test_stop_strings_cut_the_text(lm):
    g = lm.generate("abc", max_new_tokens=12)
    assert len(g.text) >= 3
    stop = g.text[2]
    cut = lm.generate("abc", max_new_tokens=12, stop=[stop])
    assert stop not in cut.text and g.text.startswith(cut.text) and cut.finish_reason == "stop"


def test_sampling_is_seeded(lm):
    a = lm.generate("abc", max_new_tokens=8, temperature=1.0, seed=3)
    b = lm.generate("abc", max_new_tokens=8, temperature=1.0, seed=3)
    assert a.token_ids == b.token_ids
    # and it really samples: other seeds give other continuations, not all the greedy one
    greedy = lm.generate("abc", max_new_tokens=8).token_ids
    runs = {tuple(lm.generate("abc", max_new_tokens=8, temperature=1.0, seed=s).token_ids) for s in range(5)}
    assert len(runs) > 1 and any(list(r) != greedy for r in runs)


@pytest.mark.parametrize("kwargs,msg", [
    ({"max_new_tokens": 0}, "max_new_tokens"), ({"temperature": -1.0}, "temperature"), ({"stop": [""]}, "stop"),
])
def test_bad_arguments_are_clear_errors(lm, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        lm.generate("abc", **{"max_new_tokens": 4, **kwargs})


def test_empty_inputs_are_rejected(lm):
    with pytest.raises(ValueError, match="batch size must be 1 or more"):
        lm.generate_batch([], max_new_tokens=4)
    with pytest.raises(ValueError, match="prompt is empty"):
        lm.generate("", max_new_tokens=4)
    with pytest.raises(ValueError, match="no chat template"):
        lm.generate([{"role": "user", "content": "hi"}], max_new_tokens=4)


def test_require_logprobs_refuses_with_the_reason():
    g = llm.Generation("x", [], None, llm.Usage(), backend="http:test")
    with pytest.raises(llm.LogprobsUnavailable, match="transformers serve"):
        llm.require_logprobs(g)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_clear_error():
    with pytest.raises(llm.LLMError, match="cannot reach the server"):
        llm.connect(f"http://127.0.0.1:{_free_port()}/v1")
    with pytest.raises(ValueError, match="http://"):
        llm.HTTPLLM("127.0.0.1:8000")


@pytest.mark.slow
def test_smollm2_answers_a_chat_question(smollm2):
    lm = llm.LocalLLM(*smollm2, name="smollm2")
    g = lm.generate([{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=12)
    assert "Paris" in g.text and all(lp <= 0 for lp in g.logprobs)


@pytest.mark.slow
def test_http_backend_against_transformers_serve(served_smollm2, smollm2):
    lm = llm.connect(served_smollm2 + "/v1")
    assert lm.model.endswith("smollm2-135m-instruct")
    local = llm.LocalLLM(*smollm2, name="smollm2")
    g = lm.generate("The capital of France is", max_new_tokens=6)
    assert g.text == local.generate("The capital of France is", max_new_tokens=6).text
    n_prompt = len(smollm2[1]("The capital of France is", add_special_tokens=False)["input_ids"])
    assert g.usage.prompt_tokens == n_prompt and g.usage.completion_tokens == 6 and g.usage.wall_s > 0
    chat = lm.generate([{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=12)
    assert "Paris" in chat.text
    # transformers serve ignores `logprobs`: the backend says so instead of inventing them
    assert g.logprobs is None
    with pytest.raises(llm.LogprobsUnavailable):
        llm.require_logprobs(g)
    cut = lm.generate("1, 2, 3, 4,", max_new_tokens=12, stop=["6"])
    assert "6" not in cut.text and cut.finish_reason == "stop"
