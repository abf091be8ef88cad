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

import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, Union

import torch

Messages = list[dict]
Prompt = Union[str, Messages]


class LLMError(RuntimeError):
    """A backend failed; the message says what to do."""


class LogprobsUnavailable(LLMError):
    """The backend returned no per-token log-probabilities."""


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
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
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
        if len(prompts) == 0:
            raise ValueError("batch size must be 1 or more: got no prompts")
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

        url = base_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a server URL starts with http:// or https://, got {base_url!r}")
        if not url.endswith("/v1"):
            url += "/v1"
        self.base_url, self.timeout_s = url, timeout_s
        self.session = requests.Session()
        self.session.trust_env = False if "127.0.0.1" in url or "localhost" in url else True
        if api_key:
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
        return r.json()

    def _first_model(self) -> str:
        data = self._request("GET", "/models").get("data") or []
        if not data:
            raise LLMError(f"the server at {self.base_url} lists no models: pass model=...")
        return data[0]["id"]

    def generate(self, prompt: Prompt, max_new_tokens: int = 64, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, seed: int | None = None) -> Generation:
        """One completion: /v1/completions for a string, /v1/chat/completions for messages."""
        stop = _check_args(max_new_tokens, temperature, stop)
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
            choice = data["choices"][0]
            text = choice.get("text", "")
            lp = choice.get("logprobs") or {}
            tokens, logprobs = lp.get("tokens"), lp.get("token_logprobs")
        else:
            data = self._request("POST", "/chat/completions",
                                 json={**body, "messages": list(prompt), "logprobs": True})
            choice = data["choices"][0]
            text = (choice.get("message") or {}).get("content") or ""
            content = (choice.get("logprobs") or {}).get("content")
            tokens = [c["token"] for c in content] if content else None
            logprobs = [c["logprob"] for c in content] if content else None
        wall = time.perf_counter() - t0
        text, hit = _cut_at_stop(text, stop)  # some servers ignore `stop`
        usage = data.get("usage") or {}
        return Generation(
            text=text, tokens=tokens or [], logprobs=logprobs,
            usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)), wall, 1),
            finish_reason="stop" if hit else choice.get("finish_reason") or "length", backend=f"http:{self.name}")

    def generate_batch(self, prompts: Sequence[Prompt], max_new_tokens: int = 64, temperature: float = 0.0,
                       stop: Sequence[str] | None = None, seed: int | None = None) -> list[Generation]:
        """One request per prompt (the server batches concurrent requests itself)."""
        if len(prompts) == 0:
            raise ValueError("batch size must be 1 or more: got no prompts")
        return [self.generate(p, max_new_tokens, temperature, stop, seed) for p in prompts]


def connect(spec: str = "smollm2", model: str | None = None, device: Any = None, **kwargs) -> LanguageModel:
    """Open a language model: an http(s) URL gives an HTTP backend, anything else a local model."""
    if isinstance(spec, str) and spec.startswith(("http://", "https://")):
        return HTTPLLM(spec, model=model, **kwargs)
    from .zoo import load_causal_lm

    m, tok = load_causal_lm(spec, device=device)
    return LocalLLM(m, tok, name=str(spec))
