"""Traces: a model's greedy solutions cut into steps, each with its text, verdict, log-probs and FLOPs (cached)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Sequence

from ..cost import TransformerShape, transformer_flops
from . import problems as T
from .generation import Generation, solve
from .models import EOS, NEWLINE, checkpoint_folder, decode, load_model, shape_of

@dataclass
class StepTrace:
    """One written step (or the answer line) of a traced solution."""

    index: int  # 0-based; the answer line has index == number of steps written
    text: str
    kind: str  # '+', '-', '*', or '#' for the answer line, '?' for a line that is not a step
    valid: bool  # locally correct (copies and computes right given the line before)
    gold: bool  # equals the gold line
    logprobs: list[float]  # per character incl. the closing newline / <eos>, nats
    max_logits: list[float]
    confidence: float  # min over the step's tokens of the chosen token's probability
    first_prob: float  # probability of the step's first token (read before the step is written)
    tokens: int
    flops: int  # analytic FLOPs spent decoding this step's tokens


@dataclass
class ProblemTrace:
    """A model's greedy solution of one problem, split into steps."""

    problem: str
    n_steps: int
    answer: int
    text: str
    correct: bool
    steps: list[StepTrace]
    prompt_tokens: int
    new_tokens: int
    flops: int


def split_steps(gen: Generation, problem: T.Problem, shape: TransformerShape) -> list[StepTrace]:
    """Cut a generation into lines and check each; attach its tokens' log-probs and FLOPs."""
    steps, cur, prev = [], [], problem.start
    # the FLOPs of the forward that produced generated token k (k = 0 is the prefill)
    per_tok = [transformer_flops(shape, 1, gen.prompt_tokens, 0, logits_positions=1)] + [
        transformer_flops(shape, 1, 1, past=gen.prompt_tokens + k - 1, logits_positions=1)
        for k in range(1, len(gen.tokens))]
    for k, tok in enumerate(gen.tokens):
        cur.append(k)
        if tok in (NEWLINE, EOS) or k == len(gen.tokens) - 1:
            text = decode(gen.tokens[j] for j in cur).strip()
            i = len(steps)
            m = T.ANSWER_RE.match(text)
            if m:
                kind, valid, gold = "#", int(m.group(1)) == prev, int(m.group(1)) == problem.answer
            elif i < problem.n_steps:
                c = T.check_step(problem, i, text, prev_value=prev)
                kind = text_kind(text)
                valid, gold = c.valid, c.gold
                r = T.step_result(text)
                prev = r if r is not None else prev
            else:
                kind, valid, gold = "?", False, False
            lp = [gen.logprobs[j] for j in cur]
            steps.append(StepTrace(i, text, kind, valid, gold, lp, [gen.max_logits[j] for j in cur],
                                   float(math.exp(min(lp))), float(math.exp(lp[0])), len(cur),
                                   int(sum(per_tok[j] for j in cur))))
            cur = []
    return steps


def text_kind(line: str) -> str:
    """The operator of a step line ('?' when it is not a step)."""
    m = T.STEP_RE.match(line.strip())
    return m.group(3) if m else "?"


def trace_problems(model, problems: Sequence[T.Problem], batch_size: int = 256) -> list[ProblemTrace]:
    """Solve the problems once and return per-problem, per-step traces (text, correctness, log-probs, FLOPs)."""
    shape = shape_of(model)
    gens = solve(model, problems, batch_size)
    out = []
    for p, g in zip(problems, gens):
        out.append(ProblemTrace(p.text, p.n_steps, p.answer, g.text, T.check_answer(p, g.text),
                                split_steps(g, p, shape), g.prompt_tokens, len(g.tokens), g.flops))
    return out


def trace(name: str, split: str = "test", n: int = 500, seed: int = 0, cfg: "T.TaskConfig | T.TaskMix | None" = None,
          verbose: bool = True) -> list[ProblemTrace]:
    """Run a committed task model over a split once; cached per (model, checkpoint, split, n, seed, cfg).

    cfg defaults to the model's own task (`models.default_task`: the v2 mix for v2 models).
    """
    from ..cache import cached
    from .models import default_task

    cfg = default_task(name) if cfg is None else cfg
    folder = checkpoint_folder(name)
    stamp = (folder / "model.safetensors").stat().st_size, json.loads((folder / "train.json").read_text()).get("sha256")
    config = {"model": name, "checkpoint": list(stamp), "split": split, "n": n, "seed": seed, "cfg": cfg}

    def compute():
        return trace_problems(load_model(name), T.problems(split, n, seed, cfg))

    from . import generation

    code = (trace_problems, split_steps, text_kind, generation.generate, generation.solve,
            T.problems, T.iter_problems, T.sample_problem, T.check_step, T.check_answer)
    return cached("taskworld_trace", config, compute, code=code, verbose=verbose)


def trace_frame(traces: Sequence[ProblemTrace]):
    """Flatten traces to one row per written step (pandas DataFrame)."""
    import pandas as pd

    rows = []
    for pi, t in enumerate(traces):
        for s in t.steps:
            rows.append({"problem_id": pi, "problem": t.problem, "n_steps": t.n_steps, "step": s.index,
                         "text": s.text, "kind": s.kind, "valid": s.valid, "gold": s.gold,
                         "confidence": s.confidence, "first_prob": s.first_prob, "tokens": s.tokens,
                         "flops": s.flops, "problem_correct": t.correct})
    return pd.DataFrame(rows)
