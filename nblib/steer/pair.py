"""Model pairs: the task world's ladder (default), or two Hugging Face causal LMs that share a tokenizer."""
from __future__ import annotations

from typing import Any

from .engine import Router, RouterConfig
from .steps import BLANK_LINE, TASKWORLD, HFVocab, StepFormat, TaskVocab, check_same_tokenizer

#: the confidence read for the task world: draft the whole step, its least likely token (see notebook 04)
TASKWORLD_READ = RouterConfig(score="max_prob", lookahead=16, aggregate="min")


def taskworld_router(small: str = "v2-tiny", large: str = "v2-large", config: RouterConfig = TASKWORLD_READ,
                     fmt: StepFormat = TASKWORLD) -> Router:
    """A router over two committed task models (names from `nblib.taskworld.available_models()`)."""
    from .. import taskworld as tw

    return Router(tw.load_model(small), tw.load_model(large), TaskVocab(fmt), fmt, config)


def _model_and_tokenizer(spec: Any, device: Any = None):
    """(model, tokenizer) of a LocalLLM, a (model, tokenizer) pair, or a Hugging Face name / folder."""
    if hasattr(spec, "model") and hasattr(spec, "tokenizer"):
        return spec.model, spec.tokenizer
    if isinstance(spec, tuple) and len(spec) == 2:
        return spec
    if hasattr(spec, "generate") and not hasattr(spec, "config"):
        raise ValueError(f"{getattr(spec, 'name', spec)!r} is a remote/text model: the cached engine needs local "
                         "weights; use nblib.steer.route_text for servers")
    from ..zoo import load_causal_lm

    return load_causal_lm(spec, device=device)


#: the confidence read for chat models: the first four drafted tokens, the least likely one
CHAT_READ = RouterConfig(score="max_prob", lookahead=4, aggregate="min")


def hf_router(small: Any, large: Any, fmt: StepFormat = BLANK_LINE, config: RouterConfig = CHAT_READ,
              device: Any = None) -> Router:
    """A router over two local Hugging Face causal LMs (names, folders, LocalLLMs) that share a tokenizer."""
    ms, ts = _model_and_tokenizer(small, device)
    ml, tl = (ms, ts) if large is small else _model_and_tokenizer(large, device)
    vs, vl = HFVocab(ts, fmt), HFVocab(tl, fmt)
    check_same_tokenizer(vs, vl)
    return Router(ms, ml, vs, fmt, config)


def chat_prompt(tokenizer, question: str, system: str | None = None) -> str:
    """The chat-template text of one user question (generation prompt added), to route step by step."""
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
