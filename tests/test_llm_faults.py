"""Issue 23: malformed server replies, NaN / inf settings and insecure keys give one clear, recorded error."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nblib import llm


class _Canned(BaseHTTPRequestHandler):
    body = b"{}"
    content_type = "application/json"

    def _send(self):
        data = type(self).body
        self.send_response(200)
        self.send_header("Content-Type", type(self).content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's names)
        self._send()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send()

    def log_message(self, *args):
        pass


@pytest.fixture
def canned():
    """A server on 127.0.0.1 answering every request with HTTP 200 and a body the test sets."""
    handler = type("Handler", (_Canned,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def set_body(body, content_type="application/json"):
        handler.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.content_type = content_type
        return llm.HTTPLLM(f"http://127.0.0.1:{server.server_address[1]}/v1", model="m", timeout_s=5)

    yield set_body
    server.shutdown()
    server.server_close()


MALFORMED = [
    ({"error": {"message": "model overloaded", "code": 503}}, "model overloaded"),
    ({"choices": []}, "no 'choices'"),
    ({"object": "chat.completion"}, "no 'choices'"),
    (b"<html><body>502 Bad Gateway</body></html>", "502 Bad Gateway"),
    (b'{"choices": [{"message": {"content": "cut', "not JSON"),
    ([1, 2, 3], "JSON list"),
    ({"choices": [{"message": {"content": 7}, "text": 7}]}, "not a string"),
]


@pytest.mark.parametrize("body,quoted", MALFORMED, ids=[str(i) for i in range(len(MALFORMED))])
@pytest.mark.parametrize("prompt", ["plain text", [{"role": "user", "content": "hi"}]], ids=["text", "chat"])
def test_a_malformed_reply_is_one_llm_error_quoting_the_body(canned, body, quoted, prompt):
    lm = canned(body, "text/html" if isinstance(body, bytes) and body.startswith(b"<") else "application/json")
    with pytest.raises(llm.MalformedReply, match=quoted) as e:
        lm.generate(prompt, max_new_tokens=4)
    assert isinstance(e.value, llm.LLMError) and "127.0.0.1" in str(e.value)


def test_lwe_records_malformed_replies_instead_of_aborting(canned):
    from nblib import lwe

    lm = canned({"error": "nope"})
    cases = lwe.stream(lwe.load("hhh"), n=3)
    rec = lwe.run("vanilla", lm, cases, lwe.JudgeConfig(fallback=False), max_errors=2)
    assert rec.status.startswith("stopped after 0 of 3") and "MalformedReply" in rec.errors[-1]
    assert "nope" in rec.errors[-1]


def test_a_good_reply_still_parses(canned):
    lm = canned({"choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    g = lm.generate([{"role": "user", "content": "hi"}], max_new_tokens=4)
    assert g.text == "hello" and g.usage.prompt_tokens == 3 and g.logprobs is None
    assert lm.fingerprint() == f"{lm.base_url and 'http:' + lm.base_url}|m"


@pytest.mark.parametrize("t", [float("nan"), float("inf"), -0.5, "0.7", None])
def test_temperature_must_be_a_finite_number_at_least_zero(canned, t):
    lm = canned({"choices": [{"text": "x"}]})
    with pytest.raises(ValueError, match="temperature"):
        lm.generate("abc", max_new_tokens=2, temperature=t)


def test_numpy_integers_are_whole_numbers(canned):
    import numpy as np

    lm = canned({"choices": [{"text": "x"}]})
    assert lm.generate("abc", max_new_tokens=np.int64(2)).text == "x"
    with pytest.raises(ValueError, match="max_new_tokens must be a whole number >= 1, got 0"):
        lm.generate("abc", max_new_tokens=np.int64(0))


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "30"])
def test_timeouts_are_checked_when_the_backend_is_made(timeout):
    with pytest.raises(ValueError, match="timeout_s"):
        llm.HTTPLLM("http://127.0.0.1:9/v1", model="m", timeout_s=timeout)


def test_an_api_key_over_plain_http_to_another_host_warns():
    with pytest.warns(UserWarning, match="clear text"):
        llm.HTTPLLM("http://example.invalid:8000/v1", model="m", api_key="sk-secret")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        llm.HTTPLLM("http://127.0.0.1:8000/v1", model="m", api_key="sk-secret")     # this machine: fine
        llm.HTTPLLM("https://example.invalid/v1", model="m", api_key="sk-secret")   # encrypted: fine


def test_the_fingerprint_of_a_local_model_is_its_weights(tiny_model, char_tokenizer):
    import copy

    a = llm.LocalLLM(tiny_model, char_tokenizer, name="local")
    b = llm.LocalLLM(copy.deepcopy(tiny_model), char_tokenizer, name="other label")
    assert llm.fingerprint(a) == llm.fingerprint(b)                # same weights, other label: same answers
    import torch

    other = copy.deepcopy(tiny_model)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    assert llm.fingerprint(llm.LocalLLM(other, char_tokenizer, name="local")) != llm.fingerprint(a)
