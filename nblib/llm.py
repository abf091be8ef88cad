"""One protocol for language models: a local transformers model or an OpenAI-compatible server.

Every backend returns `Generation`s: the text, the generated tokens with their
log-probabilities (None when the backend cannot give them), and usage (prompt
and completion tokens, wall time, calls). Methods that need log-probabilities
call `require_logprobs`, which refuses with the reason instead of guessing.

    lm = connect("smollm2")                         # the embedded model, local
    lm = connect("HuggingFaceTB/SmolLM2-360M-Instruct")   # any HF name or folder
    lm = connect("http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-7B-Instruct")  # vLLM, transformers serve
"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, Union

import torch

from . import checks

Messages = list[dict]
Prompt = Union[str, Messages]


class LLMError(RuntimeError):
    """A backend failed; the message says what to do."""


class LogprobsUnavailable(LLMError):
    """The backend returned no per-token log-probabilities."""


class MalformedReply(LLMError):
    """A server answered, but not with a completion (an error object, no choices, HTML): the message quotes it."""


@dataclass
class Usage:
    """Tokens, wall time and calls of one or more generations."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    calls: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.wall_s + other.wall_s, self.calls + other.calls)


@dataclass
class Generation:
    """One completion: text, generated tokens, their log-probabilities (or None) and usage."""

    text: str
    tokens: list[str]
    logprobs: list[float] | None
    usage: Usage
    finish_reason: str = "length"
    token_ids: list[int] | None = None
    backend: str = ""

    @property
    def mean_logprob(self) -> float:
        """Mean log-probability of the generated tokens (needs log-probabilities)."""
        lp = require_logprobs(self)
        return float(sum(lp) / max(len(lp), 1))


def require_logprobs(gen: Generation) -> list[float]:
    """Return gen.logprobs, or raise LogprobsUnavailable saying why a method cannot go on."""
    if gen.logprobs is None:
        raise LogprobsUnavailable(
            f"the backend {gen.backend or '?'} returned no per-token log-probabilities, and this method needs "
            "them. `transformers serve` ignores the `logprobs` field; vLLM returns them, and so does a local "
            "model (connect('smollm2') or any Hugging Face name/folder).")
    return gen.logprobs


class LanguageModel(Protocol):
    """What every notebook needs from a language model."""

    name: str

    def generate(self, prompt: Prompt, max_new_tokens: int = 64, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, seed: int | None = None) -> Generation: ...

    def generate_batch(self, prompts: Sequence[Prompt], max_new_tokens: int = 64, temperature: float = 0.0,
                       stop: Sequence[str] | None = None, seed: int | None = None) -> list[Generation]: ...


def _check_args(max_new_tokens: int, temperature: float, stop) -> list[str]:
    checks.whole("max_new_tokens", max_new_tokens, low=1)
    checks.number("temperature", temperature, low=0, hint="0 = greedy")  # NaN and inf refused, never guessed
    if isinstance(stop, str):
        stop = [stop]
    stop = list(stop or [])
    if any(not isinstance(s, str) or not s for s in stop):
        raise ValueError(f"stop strings must be non-empty strings, got {stop!r}")
    return stop


def _cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut text before the first stop string (OpenAI semantics: the stop string is not returned)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


# ----------------------------------------------------------------------------- local
class LocalLLM:
    """A transformers causal LM on this machine; greedy or sampled, with log-probs and stop strings."""

    def __init__(self, model, tokenizer, name: str = "local"):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    @property
    def device(self) -> torch.device:
        """The device the model's weights are on."""
        return next(self.model.parameters()).device

    def fingerprint(self) -> str:
        """What identifies this model's answers: the sha256 of its weights and of its chat template."""
        from .cache import weights_fingerprint

        template = getattr(self.tokenizer, "chat_template", None) or ""
        t = hashlib.sha256(str(template).encode()).hexdigest()[:8]
        return f"local:sha256:{weights_fingerprint(self.model)}:template:{t}:vocab:{len(self.tokenizer)}"

    def format(self, prompt: Prompt) -> str:
        """Turn chat messages into the model's prompt text (strings pass unchanged)."""
        if isinstance(prompt, str):
            if not prompt:
                raise ValueError("the prompt is empty")
            return prompt
        if not prompt or not all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt):
            raise ValueError("chat prompts are a non-empty list of {'role': ..., 'content': ...} dicts")
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise ValueError(f"{self.name} has no chat template: pass a plain string prompt")
        return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)

    def generate(self, prompt: Prompt, max_new_tokens: int = 64, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, seed: int | None = None) -> Generation:
        """Generate one completion for one prompt."""
        return self.generate_batch([prompt], max_new_tokens, temperature, stop, seed)[0]

    def generate_batch(self, prompts: Sequence[Prompt], max_new_tokens: int = 64, temperature: float = 0.0,
                       stop: Sequence[str] | None = None, seed: int | None = None) -> list[Generation]:
        """Generate for several prompts in one left-padded batch; usage wall time is shared equally."""
        stop = _check_args(max_new_tokens, temperature, stop)
        max_new_tokens, temperature = int(max_new_tokens), float(temperature)
        if isinstance(prompts, str) or len(prompts) == 0:
            raise ValueError("batch size must be 1 or more: prompts must be a non-empty list (for one prompt, call generate)")
        texts = [self.format(p) for p in prompts]
        tok = self.tokenizer
        tok.padding_side = "left"
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, return_dict_in_generate=True,
                                      output_logits=True, pad_token_id=tok.pad_token_id)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
            if seed is not None:
                torch.manual_seed(seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=stop, tokenizer=tok)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(**enc, **kwargs)
        wall = time.perf_counter() - t0
        new = out.sequences[:, enc["input_ids"].shape[1]:]                    # (B, new)
        logits = torch.stack(out.logits, dim=1).float()                      # (B, new, V)
        lp = torch.log_softmax(logits, -1).gather(-1, new.unsqueeze(-1)).squeeze(-1)  # (B, new)
        gens = []
        eos = set(_as_list(self.model.generation_config.eos_token_id)) | {tok.eos_token_id}
        for b in range(len(texts)):
            ids, lps = new[b].tolist(), lp[b].tolist()
            n = len(ids)
            finish = "length"
            for i, t in enumerate(ids):                # cut at EOS / padding after it
                if t in eos:
                    n, finish = i + 1, "stop"
                    break
            ids, lps = ids[:n], lps[:n]
            text = tok.decode([t for t in ids if t not in eos], skip_special_tokens=True)
            text, hit = _cut_at_stop(text, stop)
            if hit:
                finish = "stop"
            gens.append(Generation(
                text=text, tokens=[tok.decode([t]) for t in ids], logprobs=lps, token_ids=ids,
                usage=Usage(int(enc["attention_mask"][b].sum()), len(ids), wall / len(texts), 1),
                finish_reason=finish, backend=f"local:{self.name}"))
        return gens


def _as_list(x) -> list:
    return [] if x is None else (list(x) if isinstance(x, (list, tuple)) else [x])


# ----------------------------------------------------------------------------- http
class HTTPLLM:
    """An OpenAI-compatible server (vLLM, `transformers serve`, llama.cpp server, a hosted API)."""

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout_s: float = 300.0):
        import requests

        if not isinstance(base_url, str):
            raise ValueError(f"base_url must be a server URL string (http://HOST:PORT/v1), got {base_url!r}")
        url = base_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a server URL starts with http:// or https://, got {base_url!r}")
        if not url.endswith("/v1"):
            url += "/v1"
        timeout_s = checks.number("timeout_s", timeout_s, low=0, low_open=True, hint="seconds to wait for the server")
        self.base_url, self.timeout_s = url, timeout_s
        self.session = requests.Session()
        local = _is_local(url)
        self.session.trust_env = not local
        if api_key:
            if url.startswith("http://") and not local:
                warnings.warn(f"the api_key is sent in clear text over plain http:// to {url}: use https:// for a "
                              "server that is not on this machine", UserWarning, stacklevel=2)
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.model = model or self._first_model()
        self.name = f"{self.model} @ {self.base_url}"

    def _request(self, method: str, path: str, **kwargs) -> dict:
        import requests

        try:
            r = self.session.request(method, self.base_url + path, timeout=self.timeout_s, **kwargs)
        except requests.ConnectionError as e:
            raise LLMError(f"cannot reach the server at {self.base_url}: is it running? Start one with "
                           "`transformers serve FOLDER --host 127.0.0.1 --port 8000`, or `vllm serve MODEL`. "
                           f"({type(e).__name__})") from None
        except requests.Timeout:
            raise LLMError(f"the server at {self.base_url} did not answer within {self.timeout_s:.0f} s") from None
        if r.status_code != 200:
            raise LLMError(f"the server at {self.base_url}{path} answered HTTP {r.status_code}: {r.text[:300]}")
        try:
            data = r.json()
        except ValueError:   # JSONDecodeError (json or simplejson): an HTML page, a proxy's banner, a cut body
            raise MalformedReply(f"the server at {self.base_url}{path} answered HTTP 200 with a body that is not "
                                 f"JSON; it starts with {_first_bytes(r.content)}") from None
        if not isinstance(data, dict):
            raise MalformedReply(f"the server at {self.base_url}{path} answered a JSON {type(data).__name__}, not an "
                                 f"object; it starts with {_first_bytes(r.content)}")
        if "error" in data and "choices" not in data and "data" not in data:
            raise MalformedReply(f"the server at {self.base_url}{path} answered HTTP 200 with an error: "
                                 f"{_first_bytes(r.content)}")
        return data

    def fingerprint(self) -> str:
        """What identifies this model's answers: the server URL and the model id it serves."""
        return f"http:{self.base_url}|{self.model}"

    def _choice(self, data: dict, path: str) -> dict:
        """The first choice of a completion reply, or a MalformedReply quoting the reply's first bytes."""
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise MalformedReply(f"the server at {self.base_url}{path} answered without a completion (no 'choices'); "
                                 f"the reply starts with {_first_bytes(json.dumps(data).encode())}")
        return choices[0]

    def _first_model(self) -> str:
        data = self._request("GET", "/models").get("data") or []
        if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "id" not in data[0]:
            raise LLMError(f"the server at {self.base_url} lists no models: pass model=...")
        return str(data[0]["id"])

    def generate(self, prompt: Prompt, max_new_tokens: int = 64, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, seed: int | None = None) -> Generation:
        """One completion: /v1/completions for a string, /v1/chat/completions for messages."""
        stop = _check_args(max_new_tokens, temperature, stop)
        max_new_tokens, temperature = int(max_new_tokens), float(temperature)
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_new_tokens, "temperature": temperature}
        if stop:
            body["stop"] = stop
        if seed is not None:
            body["seed"] = seed
        t0 = time.perf_counter()
        if isinstance(prompt, str):
            if not prompt:
                raise ValueError("the prompt is empty")
            data = self._request("POST", "/completions", json={**body, "prompt": prompt, "logprobs": 1})
            choice = self._choice(data, "/completions")
            text = choice.get("text")
            lp = choice.get("logprobs") or {}
            tokens, logprobs = (lp.get("tokens"), lp.get("token_logprobs")) if isinstance(lp, dict) else (None, None)
        else:
            data = self._request("POST", "/chat/completions",
                                 json={**body, "messages": list(prompt), "logprobs": True})
            choice = self._choice(data, "/chat/completions")
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
            text = "" if text is None else text
            lp = choice.get("logprobs")
            content = lp.get("content") if isinstance(lp, dict) else None
            try:
                tokens = [c["token"] for c in content] if content else None
                logprobs = [float(c["logprob"]) for c in content] if content else None
            except (TypeError, KeyError, ValueError):
                raise MalformedReply(f"the server at {self.base_url}/chat/completions sent log-probabilities "
                                     f"in an unknown shape: {_first_bytes(json.dumps(lp).encode())}") from None
        text = "" if text is None else text
        if not isinstance(text, str):
            raise MalformedReply(f"the server at {self.base_url} sent a completion text that is not a string: "
                                 f"{_first_bytes(json.dumps(choice).encode())}")
        wall = time.perf_counter() - t0
        text, hit = _cut_at_stop(text, stop)  # some servers ignore `stop`
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        try:
            n_in, n_out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        except (TypeError, ValueError):
            raise MalformedReply(f"the server at {self.base_url} sent usage that is not token counts: "
                                 f"{_first_bytes(json.dumps(usage).encode())}") from None
        return Generation(
            text=text, tokens=tokens or [], logprobs=logprobs, usage=Usage(n_in, n_out, wall, 1),
            finish_reason="stop" if hit else choice.get("finish_reason") or "length", backend=f"http:{self.name}")

    def generate_batch(self, prompts: Sequence[Prompt], max_new_tokens: int = 64, temperature: float = 0.0,
                       stop: Sequence[str] | None = None, seed: int | None = None) -> list[Generation]:
        """One request per prompt (the server batches concurrent requests itself)."""
        if isinstance(prompts, str) or len(prompts) == 0:
            raise ValueError("batch size must be 1 or more: prompts must be a non-empty list (for one prompt, call generate)")
        return [self.generate(p, max_new_tokens, temperature, stop, seed) for p in prompts]


def _is_local(url: str) -> bool:
    """True when a URL's host is this machine (127.x, localhost, ::1)."""
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _first_bytes(body: bytes, n: int = 200) -> str:
    """The first `n` bytes of a reply body, quoted, for an error message."""
    head = body[:n].decode("utf-8", "replace")
    return repr(head) + (f" ... ({len(body)} bytes)" if len(body) > n else "")


def fingerprint(lm) -> str:
    """What identifies a language model's answers, for response stores and caches (never just its label).

    A backend's own `fingerprint()` (a local model: its weights' sha256; a server: URL + model id); else a
    module in `.model`: its weights' sha256; else the backend's class and name.
    """
    own = getattr(lm, "fingerprint", None)
    if callable(own):
        return str(own())
    module = getattr(lm, "model", None)
    if isinstance(module, torch.nn.Module):
        from .cache import weights_fingerprint

        return f"sha256:{weights_fingerprint(module)}"
    return f"{type(lm).__module__}.{type(lm).__qualname__}:{getattr(lm, 'name', '')}"


def connect(spec: str = "smollm2", model: str | None = None, device: Any = None, **kwargs) -> LanguageModel:
    """Open a language model: an http(s) URL gives an HTTP backend, anything else a local model."""
    if isinstance(spec, str) and spec.startswith(("http://", "https://")):
        return HTTPLLM(spec, model=model, **kwargs)
    from .zoo import load_causal_lm

    m, tok = load_causal_lm(spec, device=device)
    return LocalLLM(m, tok, name=str(spec))
