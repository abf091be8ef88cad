"""The task world: seeded multi-step arithmetic problems, one step per line, with exact checkers.

A problem is a start value and a list of operations applied in turn to a running
total, written on one line with commas::

    47,+8,*2,-15          (start at 47, add 8, double, subtract 15)

Its solution writes one step per line, then the final-answer line (``#``)::

    47+8=55
    55*2=110
    110-15=95
    #95

Every step is checkable on its own: it must copy the running total, copy the
problem's next operation, and compute right. The kind of a step is its
operator (``+``, ``-``, ``*``); HierRouter's specialists are trained on one kind.
Splits are fixed by a hash of the problem text (80 % train, 10 % val, 10 % test),
so train and held-out problems never overlap, whatever the seed.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

OPS = ("+", "-", "*")
KIND_NAMES = {"+": "add", "-": "sub", "*": "mul"}
ANSWER = "#"
SPLITS = {"train": (0, 80), "val": (80, 90), "test": (90, 100)}  # hash buckets out of 100
DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "taskworld"
BIGBENCH_FILE = DATA_DIR / "bigbench_arithmetic_subset.jsonl"


class MalformedProblem(ValueError):
    """A problem or solution text that is not in the task world's format; the message says why."""


@dataclass(frozen=True)
class TaskConfig:
    """Difficulty knobs of the generator (all values stay in 0..max_value)."""

    min_steps: int = 2
    max_steps: int = 6
    max_value: int = 99  # digit count: 99 = two digits, 999 = three
    max_addend: int = 99  # largest operand of + and -
    max_factor: int = 9  # largest multiplier of *
    op_weights: tuple[tuple[str, float], ...] = (("+", 1.0), ("-", 1.0), ("*", 2.0))  # operation mix (* only fits when total <= max_value // 2)

    def __post_init__(self):
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(f"need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        if self.max_value < 1 or self.max_addend < 1 or self.max_factor < 1:
            raise ValueError("max_value, max_addend and max_factor must be >= 1")
        bad = [op for op, _ in self.op_weights if op not in OPS]
        if bad or not any(w > 0 for _, w in self.op_weights):
            raise ValueError(f"op_weights must name ops from {OPS} with some positive weight, got {self.op_weights}")

    @classmethod
    def mostly(cls, op: str, share: float = 0.9, **kw) -> "TaskConfig":
        """A config whose steps are mostly (`share`) of one kind, the rest split over the others."""
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}; ops are {OPS}")
        rest = (1 - share) / (len(OPS) - 1)
        return cls(op_weights=tuple((o, share if o == op else rest) for o in OPS), **kw)


@dataclass(frozen=True)
class TaskMix:
    """A mixture of named difficulty levels (each a TaskConfig) drawn with the given weights.

    Every level has its own range of step counts, disjoint from the others', so a
    problem's level follows from its number of steps (`level_of`).
    """

    levels: tuple[tuple[str, TaskConfig, float], ...]

    def __post_init__(self):
        if not self.levels:
            raise ValueError("a TaskMix needs at least one level")
        names = [n for n, _, _ in self.levels]
        if len(set(names)) != len(names):
            raise ValueError(f"level names must be distinct, got {names}")
        if any(not (w >= 0) for _, _, w in self.levels) or not any(w > 0 for _, _, w in self.levels):
            raise ValueError(f"level weights must be >= 0 with some positive, got {[w for _, _, w in self.levels]}")
        spans = sorted((c.min_steps, c.max_steps, n) for n, c, _ in self.levels)
        for (_, hi, a), (lo, _, b) in zip(spans, spans[1:]):
            if lo <= hi:
                raise ValueError(f"levels {a!r} and {b!r} share step counts; each level needs its own range")

    @property
    def names(self) -> tuple[str, ...]:
        """The level names, in the order given (easiest first by convention)."""
        return tuple(n for n, _, _ in self.levels)

    def level(self, name: str) -> TaskConfig:
        """The TaskConfig of one named level; UnknownLevel (listing the levels) when there is none."""
        for n, c, _ in self.levels:
            if n == name:
                return c
        raise UnknownLevel(f"no difficulty level named {name!r}; levels are {list(self.names)}")

    def level_of(self, problem: "Problem | int") -> str:
        """The name of the level whose step range holds this problem's (or this) number of steps."""
        k = problem if isinstance(problem, int) else problem.n_steps
        for n, c, _ in self.levels:
            if c.min_steps <= k <= c.max_steps:
                return n
        raise UnknownLevel(f"a {k}-step problem fits no level of this mix {list(self.names)}")

    @property
    def min_steps(self) -> int:
        """The fewest steps of any level."""
        return min(c.min_steps for _, c, _ in self.levels)

    @property
    def max_steps(self) -> int:
        """The most steps of any level."""
        return max(c.max_steps for _, c, _ in self.levels)

    @property
    def max_value(self) -> int:
        """The largest running total any level allows."""
        return max(c.max_value for _, c, _ in self.levels)


class UnknownLevel(KeyError):
    """A difficulty level that the mix does not have; the message lists the ones it has."""

    def __str__(self) -> str:
        return str(self.args[0])


# Task world v2: three named difficulty levels, disjoint in their step counts. `easy` adds and subtracts one
# digit at a time in 2-3 steps (totals up to 99); `medium` is two-digit operands and multiplication in 4-5
# steps; `hard` is 6-8 steps with three-digit totals and more multiplication. The default mix is mostly easy
# and medium queries with a tail of hard ones, the shape of a real query stream.
LEVELS_V2 = (
    ("easy", TaskConfig(min_steps=2, max_steps=3, max_value=99, max_addend=9, max_factor=9,
                        op_weights=(("+", 1.0), ("-", 1.0))), 0.45),
    ("medium", TaskConfig(min_steps=4, max_steps=5, max_value=99, max_addend=99, max_factor=9,
                          op_weights=(("+", 1.0), ("-", 1.0), ("*", 2.0))), 0.40),
    ("hard", TaskConfig(min_steps=6, max_steps=8, max_value=999, max_addend=99, max_factor=9,
                        op_weights=(("+", 1.0), ("-", 1.0), ("*", 4.0))), 0.15),
)
# the first large-rung stage (issue 21's first try) trained on this earlier weighting, with two-digit easy steps
LEVELS_V2_FIRST = (("easy", replace(LEVELS_V2[0][1], max_addend=99), 0.40), ("medium", LEVELS_V2[1][1], 0.35),
                   ("hard", LEVELS_V2[2][1], 0.25))
V2_FIRST_MIX = TaskMix(LEVELS_V2_FIRST)
V2_MIX = TaskMix(LEVELS_V2)  # the default mix of task world v2 (notebooks 00b and 06)


@dataclass(frozen=True)
class Problem:
    """A start value and the operations applied to it in turn; the gold solution follows from them."""

    start: int
    ops: tuple[tuple[str, int], ...]
    source: str = field(default="taskworld", compare=False)

    def __post_init__(self):
        if not isinstance(self.start, int) or self.start < 0:
            raise MalformedProblem(f"start value must be a non-negative integer, got {self.start!r}")
        if not self.ops:
            raise MalformedProblem("a problem needs at least one operation")
        for op, x in self.ops:
            if op not in OPS or not isinstance(x, int) or x < 0:
                raise MalformedProblem(f"bad operation {op!r}{x!r}: ops are {OPS} with non-negative integers")

    @property
    def text(self) -> str:
        """The problem line, e.g. '47,+8,*2,-15'."""
        return ",".join([str(self.start)] + [f"{op}{x}" for op, x in self.ops])

    @property
    def n_steps(self) -> int:
        """Number of steps (operations)."""
        return len(self.ops)

    @property
    def values(self) -> list[int]:
        """Running totals: the start value then the value after each step (n_steps + 1 ints)."""
        vals = [self.start]
        for op, x in self.ops:
            vals.append(apply_op(vals[-1], op, x))
        return vals

    @property
    def answer(self) -> int:
        """The final answer."""
        return self.values[-1]

    @property
    def kinds(self) -> list[str]:
        """The kind (operator) of each step."""
        return [op for op, _ in self.ops]

    @property
    def step_lines(self) -> list[str]:
        """The gold solution's step lines, e.g. ['47+8=55', '55*2=110']."""
        v = self.values
        return [f"{v[i]}{op}{x}={v[i + 1]}" for i, (op, x) in enumerate(self.ops)]

    @property
    def solution(self) -> str:
        """The gold solution: one step per line, then the answer line '#N' (no trailing newline)."""
        return "\n".join(self.step_lines + [f"{ANSWER}{self.answer}"])

    def in_range(self, max_value: int = 99) -> bool:
        """True when every running total lies in 0..max_value."""
        return all(0 <= v <= max_value for v in self.values)


def apply_op(a: int, op: str, x: int) -> int:
    """Apply one operation to the running total."""
    if op == "+":
        return a + x
    if op == "-":
        return a - x
    if op == "*":
        return a * x
    raise MalformedProblem(f"unknown operation {op!r}; ops are {OPS}")


_NUM = r"(0|[1-9]\d*)"
_OP_RE = re.compile(rf"([+\-*]){_NUM}")
_PROBLEM_RE = re.compile(rf"{_NUM}(,[+\-*]{_NUM})+")
STEP_RE = re.compile(rf"^(-?{_NUM})([+\-*]){_NUM}=(-?{_NUM})$")
ANSWER_RE = re.compile(rf"^{re.escape(ANSWER)}(-?{_NUM})$")


def parse_problem(text: str) -> Problem:
    """Parse a problem line like '47,+8,*2' into a Problem; raise MalformedProblem saying why not."""
    if not isinstance(text, str):
        raise MalformedProblem(f"a problem is a string like '47,+8,*2', got {type(text).__name__}")
    s = text.strip()
    if not _PROBLEM_RE.fullmatch(s):
        parts = s.split(",")
        hint = ""
        if len(parts) < 2:
            hint = " (it needs at least one operation after the start value)"
        else:
            for p in parts[1:]:
                if not _OP_RE.fullmatch(p):
                    hint = f" (the part {p!r} is not an operator +, - or * followed by a number)"
                    break
            if not hint and not re.fullmatch(_NUM, parts[0]):
                hint = f" (the start {parts[0]!r} is not a non-negative integer)"
        raise MalformedProblem(f"malformed problem {text!r}{hint}; expected e.g. '47,+8,*2,-15'")
    first, *rest = s.split(",")
    return Problem(int(first), tuple((p[0], int(p[1:])) for p in rest))


@dataclass(frozen=True)
class StepCheck:
    """The verdict on one written step line."""

    line: str
    well_formed: bool  # matches 'a<op>x=b'
    copies_ok: bool  # a is the running total written before, <op>x is the problem's next operation
    arithmetic_ok: bool  # b == a <op> x
    gold: bool  # the line equals the gold step line

    @property
    def valid(self) -> bool:
        """Locally correct: well formed, copies right and computes right (given what was written before)."""
        return self.well_formed and self.copies_ok and self.arithmetic_ok


def check_step(problem: Problem, index: int, line: str, prev_value: int | None = None) -> StepCheck:
    """Check step `index` (0-based) of a solution; prev_value is the total written before (default: gold)."""
    if not 0 <= index < problem.n_steps:
        raise IndexError(f"step {index} out of range for a {problem.n_steps}-step problem")
    line = line.strip()
    gold = line == problem.step_lines[index]
    m = STEP_RE.match(line)
    if not m:
        return StepCheck(line, False, False, False, gold)
    a, op, x, b = int(m.group(1)), m.group(3), int(m.group(4)), int(m.group(5))
    expected_a = problem.values[index] if prev_value is None else prev_value
    copies = a == expected_a and (op, x) == problem.ops[index]
    return StepCheck(line, True, copies, apply_op(a, op, x) == b, gold)


def step_result(line: str) -> int | None:
    """The value a step line writes after '=' (None when the line is not a step)."""
    m = STEP_RE.match(line.strip())
    return int(m.group(5)) if m else None


def parse_solution(text: str) -> tuple[list[str], int | None]:
    """Split a written solution into its step lines and the final answer (None when there is none)."""
    lines = [ln.strip() for ln in text.strip().split("\n") if ln.strip()]
    answer = None
    if lines:
        m = ANSWER_RE.match(lines[-1])
        if m:
            answer = int(m.group(1))
            lines = lines[:-1]
    return lines, answer


def check_answer(problem: Problem, solution_text: str) -> bool:
    """True when the solution's final-answer line equals the problem's answer."""
    return parse_solution(solution_text)[1] == problem.answer


def check_solution(problem: Problem, solution_text: str) -> list[StepCheck]:
    """Check every written step against the problem, each given the total the previous line wrote."""
    lines, _ = parse_solution(solution_text)
    out, prev = [], problem.start
    for i, line in enumerate(lines[: problem.n_steps]):
        c = check_step(problem, i, line, prev_value=prev)
        out.append(c)
        r = step_result(line)
        prev = r if r is not None else prev
    return out


# ----------------------------------------------------------------------------- generation
def split_of(problem: Problem | str) -> str:
    """The split ('train', 'val' or 'test') a problem belongs to, fixed by a hash of its text."""
    text = problem.text if isinstance(problem, Problem) else parse_problem(problem).text
    bucket = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100
    for name, (lo, hi) in SPLITS.items():
        if lo <= bucket < hi:
            return name
    raise AssertionError(bucket)


def _feasible(v: int, op: str, cfg: TaskConfig) -> bool:
    """Whether a step of this kind can keep the total in range with a non-trivial operand."""
    if op == "+":
        return v < cfg.max_value
    if op == "-":
        return v > 0
    return 1 <= v and 2 * v <= cfg.max_value


def sample_problem(rng: random.Random, cfg: TaskConfig | TaskMix = TaskConfig(), n_steps: int | None = None) -> Problem:
    """Draw one problem whose running totals stay in 0..cfg.max_value (operands 0 or 1 are rare).

    With a TaskMix, a level is drawn by weight first (or, given n_steps, the level that holds it).
    """
    if isinstance(cfg, TaskMix):
        if n_steps is not None:
            cfg = cfg.level(cfg.level_of(n_steps))
        else:
            cfg = rng.choices([c for _, c, _ in cfg.levels], weights=[w for _, _, w in cfg.levels])[0]
    n = n_steps if n_steps is not None else rng.randint(cfg.min_steps, cfg.max_steps)
    start = v = rng.randint(0, cfg.max_value)
    weights = dict(cfg.op_weights)
    ops = []
    for _ in range(n):
        ok = [o for o in OPS if _feasible(v, o, cfg)]
        w = [weights.get(o, 0.0) for o in ok]
        if sum(w) <= 0:
            w = [1.0] * len(ok)  # only off-mix kinds fit: pick one of them
        op = rng.choices(ok, weights=w)[0]
        trivial = rng.random() < 0.04  # 0 (or *1) operands now and then, as in BIG-bench
        if op == "+":
            x = 0 if trivial else rng.randint(1, min(cfg.max_addend, cfg.max_value - v))
        elif op == "-":
            x = 0 if trivial else rng.randint(1, min(cfg.max_addend, v))
        else:
            x = rng.choice([0, 1]) if trivial else rng.randint(2, min(cfg.max_factor, cfg.max_value // v))
        ops.append((op, x))
        v = apply_op(v, op, x)
    return Problem(start, tuple(ops))


def _seed_int(*parts) -> int:
    return int(hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12], 16)


def problems(split: str, n: int, seed: int = 0, cfg: TaskConfig | TaskMix = TaskConfig(),
             n_steps: int | None = None) -> list[Problem]:
    """`n` distinct problems of one split, deterministic in (split, seed, cfg, n_steps)."""
    return list(iter_problems(split, seed, cfg, n_steps, limit=n))


# draws in a row without a new problem after which a split counts as exhausted; the real configs' longest
# run is ~150 (default config, every n_steps, TaskConfig.mostly(op), 2000 test problems), so this never
# fires on them, and it gives up on an exhausted config in ~0.2 s instead of looping forever
MAX_STALE_DRAWS = 10_000


class ProblemsExhausted(RuntimeError):
    """A config cannot yield as many distinct problems of a split as were asked for."""


def iter_problems(split: str, seed: int = 0, cfg: TaskConfig | TaskMix = TaskConfig(), n_steps: int | None = None,
                  limit: int | None = None, distinct: bool = True) -> Iterator[Problem]:
    """Stream problems of one split (train streams are endless; repeats are skipped when distinct).

    Raises ProblemsExhausted when MAX_STALE_DRAWS draws in a row bring no new problem (the config's
    space of distinct problems in this split is used up).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are {list(SPLITS)}")
    rng = random.Random(_seed_int(split, seed, cfg, n_steps))
    seen: set[str] = set()
    count, tries, stale = 0, 0, 0
    while limit is None or count < limit:
        p = sample_problem(rng, cfg, n_steps)
        tries += 1
        if tries > 1000 and count == 0:
            raise ProblemsExhausted(f"cannot draw any {split} problem under {cfg}: widen the config "
                                    "(max_steps, max_value, max_addend, max_factor)")
        if split_of(p) != split or (distinct and p.text in seen):
            stale += 1
            if stale >= MAX_STALE_DRAWS:
                wanted = f"{limit} were asked for" if limit is not None else "the distinct stream is used up"
                raise ProblemsExhausted(
                    f"found only {count} distinct {split} problems under {cfg}"
                    f"{'' if n_steps is None else f' with n_steps={n_steps}'} ({wanted}; {MAX_STALE_DRAWS} "
                    "draws in a row brought no new one): ask for fewer, or widen the config "
                    "(more steps, larger max_value / max_addend / max_factor)")
            continue
        stale = 0
        if distinct:
            seen.add(p.text)
        count += 1
        yield p


# ----------------------------------------------------------------------------- BIG-bench subset
@dataclass(frozen=True)
class ExternalItem:
    """One converted item of an external test set: the problem plus where it came from."""

    problem: Problem
    task: str
    original_input: str
    original_target: str


def load_bigbench(path: Path | str = BIGBENCH_FILE) -> list[ExternalItem]:
    """Load the committed BIG-bench arithmetic subset (built by scripts/build_bigbench_subset.py)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with: python scripts/build_bigbench_subset.py")
    items = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "problem" not in row:
            continue  # the header row (canary, licence)
        p = parse_problem(row["problem"])
        if p.answer != int(row["answer"]):
            raise MalformedProblem(f"{path}: item {row} has answer {row['answer']} but the problem gives {p.answer}")
        items.append(ExternalItem(Problem(p.start, p.ops, source=row["task"]), row["task"], row["input"], row["target"]))
    return items
