"""The pool: models that each write one step of a solution, with their cost per token.

The step function is the only model-specific part of HierRouter. A `StepModel` has a `name`, a
`flops_per_token` and `step_batch(contexts)`, which returns the next line each context continues with and
how many tokens it read and wrote. Three kinds ship:

- `TaskStepModel`: a committed task-world v2 model (`v2-tiny`, `v2-large`, `v2-spec-sub`, ...), greedy, batched;
- `LLMStepModel`: any `nblib.llm.LanguageModel` (local transformers model or an OpenAI-compatible server),
  with a user-given FLOPs per token;
- `ScriptedStepModel`: a plain function of the context text (tests, synthetic tables).

Cost per call = FLOPs per token x (tokens read + tokens written): every hop reads its whole context.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

def default_pool() -> tuple[str, ...]:
    """The task world v2 pool, cheapest first: v2-tiny, the specialists, v2-mid, v2-large."""
    from ..taskworld import models as tw

    return (tw.LADDER[0], *tw.SPECIALISTS.values(), *tw.LADDER[1:])


DEFAULT_POOL = default_pool()  # ("v2-tiny", "v2-spec-sub", "v2-spec-mul", "v2-mid", "v2-large")
MAX_STEP_TOKENS = 16  # a step line of the task world is at most ~12 characters plus its newline


class UnknownPoolModel(ValueError):
    """A pool names a model that does not exist; the message lists the ones there are."""


@dataclass(frozen=True)
class StepOutput:
    """One call of a pool model: the line it wrote (no newline), tokens read and tokens written."""

    line: str
    tokens_in: int
    tokens_out: int


class StepModel(Protocol):
    """What HierRouter needs from a pool model."""

    name: str
    flops_per_token: float

    def step_batch(self, contexts: Sequence[str]) -> list[StepOutput]: ...


def call_cost(model: StepModel, out: StepOutput) -> float:
    """FLOPs of one call: the model's FLOPs per token x (tokens read + tokens written)."""
    return float(model.flops_per_token) * (out.tokens_in + out.tokens_out)


class TaskStepModel:
    """A committed task-world model writing the next step line greedily (batched, stop at newline)."""

    def __init__(self, name: str, batch_size: int = 256):
        from .. import cost
        from ..taskworld import models

        self.name = name
        self.model = models.load_model(name)
        self.params = cost.TransformerShape.from_config(self.model.config).params(tied_embeddings=True)
        self.flops_per_token = 2.0 * self.params  # a forward costs ~2 x params FLOPs per token processed
        self.batch_size = batch_size

    def step_batch(self, contexts: Sequence[str]) -> list[StepOutput]:
        """The next line of each context (greedy), with tokens read (incl. <bos>) and written (incl. newline)."""
        from ..taskworld import generation

        if not contexts:
            return []
        gens = generation.generate(self.model, list(contexts), max_new_tokens=MAX_STEP_TOKENS,
                                   stop_at_newline=True, batch_size=self.batch_size)
        return [StepOutput(g.text.strip(), g.prompt_tokens, len(g.tokens)) for g in gens]


class LLMStepModel:
    """Any `nblib.llm.LanguageModel` as a pool model: greedy, stops at a newline; FLOPs per token given."""

    def __init__(self, lm, flops_per_token: float, name: str | None = None, max_new_tokens: int = 64):
        if not flops_per_token > 0:
            raise ValueError(f"flops_per_token must be > 0 (about 2 x the parameter count), got {flops_per_token!r}")
        self.lm = lm
        self.name = name or getattr(lm, "name", "llm")
        self.flops_per_token = float(flops_per_token)
        self.max_new_tokens = max_new_tokens

    def step_batch(self, contexts: Sequence[str]) -> list[StepOutput]:
        """The next line of each context from the language model, with its usage's token counts."""
        gens = self.lm.generate_batch(list(contexts), max_new_tokens=self.max_new_tokens, temperature=0.0,
                                      stop=["\n"])
        return [StepOutput(g.text.strip().split("\n")[0], g.usage.prompt_tokens, g.usage.completion_tokens)
                for g in gens]


class ScriptedStepModel:
    """A pool model that is a plain function context -> line; tokens are characters (+1 for the newline)."""

    def __init__(self, name: str, fn: Callable[[str], str], flops_per_token: float):
        if not flops_per_token > 0:
            raise ValueError(f"flops_per_token must be > 0, got {flops_per_token!r}")
        self.name, self.fn, self.flops_per_token = name, fn, float(flops_per_token)

    def step_batch(self, contexts: Sequence[str]) -> list[StepOutput]:
        """Apply the script to each context."""
        out = []
        for c in contexts:
            line = self.fn(c).strip()
            out.append(StepOutput(line, len(c) + 1, len(line) + 1))
        return out


def make_pool(models: Sequence[str | StepModel] = DEFAULT_POOL) -> list[StepModel]:
    """Pool models from names of committed task models (or StepModel objects, kept as they are)."""
    from ..taskworld import models as tw

    if isinstance(models, str):
        raise TypeError(f"pass a list of model names, e.g. {list(DEFAULT_POOL)}, not the string {models!r}")
    old = set(tw.LADDER_V1) | set(tw.SPECIALISTS_V1.values())  # the first ladder: HierRouter runs on v2 only
    have = [m for m in tw.available_models() if m not in old]
    pool, names = [], []
    for m in models:
        if isinstance(m, str):
            if m not in have:
                raise UnknownPoolModel(f"unknown model {m!r} in the pool; the task models are {have} (or pass any "
                                       "StepModel, e.g. hierrouter.LLMStepModel(llm.connect(...), flops_per_token))")
            m = TaskStepModel(m)
        elif not all(hasattr(m, a) for a in ("name", "flops_per_token", "step_batch")):
            raise TypeError(f"a pool entry must be a model name or a StepModel (name, flops_per_token, "
                            f"step_batch), got {type(m).__name__}")
        if m.name in names:
            raise ValueError(f"model {m.name!r} is twice in the pool; each pool model needs its own name")
        names.append(m.name)
        pool.append(m)
    if not pool:
        raise ValueError("the pool is empty: name at least one model, e.g. ['v2-tiny', 'v2-large']")
    return pool
