"""Build data/taskworld/bigbench_arithmetic_subset.jsonl from the BIG-bench 1.0.0 source package.

The BIG-bench task JSONs ship inside the PyPI source distribution bigbench==1.0.0
(Apache-2.0, 358 MB). This script downloads that sdist once with
`pip download --no-deps --no-binary :all: bigbench==1.0.0 -d /tmp/bb` (it never
installs it), checks its sha256 against the pin in `nblib.cache.SOURCE_ARCHIVES`
(also before reusing a copy; a copy that differs is an error, never reused),
reads the task JSONs straight from the tarball, and keeps the items that the
task world can express:

- `arithmetic/{1,2}_digit_{addition,subtraction,multiplication}`: "What is A plus B?"
  becomes the one-step problem "A,+B"; kept when every value lies in 0..99 and a
  multiplier is 0..9 (the world never writes negative numbers or 3-digit totals);
- `elementary_math_qa/question_with_mathematical_hint`: the hint formula
  (e.g. "multiply(add(3, 4), 5)") becomes a multi-step chain "3,+4,*5" when it is a
  chain of add/subtract/multiply on integers that stays in 0..99.

Usage: python scripts/build_bigbench_subset.py [--sdist PATH] [--per-task N]
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib import taskworld  # noqa: E402
from nblib.cache import SOURCE_ARCHIVES, fetch_source_archive, sha256_file, verify_sha256  # noqa: E402

REQUIREMENT = "bigbench==1.0.0"

SDIST = Path("/tmp/bb/bigbench-1.0.0.tar.gz")
BASE = "bigbench-1.0.0/bigbench/benchmark_tasks/"
ARITH = [f"{d}_digit_{op}" for d in (1, 2) for op in ("addition", "subtraction", "multiplication")]
WORD_OP = {"plus": "+", "minus": "-", "times": "*"}
MATHQA_OP = {"add": "+", "subtract": "-", "multiply": "*"}


def fetch(sdist: Path) -> Path:
    """The sdist, its sha256 checked against the pin; downloaded with pip (no install) when missing."""
    name, sha = SOURCE_ARCHIVES[REQUIREMENT]
    if sdist.name == name:
        return fetch_source_archive(REQUIREMENT, sdist.parent)  # reuses a copy only when its sha256 matches
    return verify_sha256(sdist, sha)  # a copy under another name: must be the pinned file


def convert_arith(question: str) -> taskworld.Problem | None:
    """'What is 12 plus 7?' -> Problem(12, (('+', 7),)) when it fits the world, else None."""
    m = re.fullmatch(r"What is (\d+) (plus|minus|times) (\d+)\?", question.strip())
    if not m:
        return None
    a, op, b = int(m.group(1)), WORD_OP[m.group(2)], int(m.group(3))
    if op == "*" and b > 9 and a <= 9:
        a, b = b, a  # the world multiplies by a single digit; multiplication commutes
    p = taskworld.Problem(a, ((op, b),))
    if op == "*" and b > 9:
        return None
    return p if p.in_range(99) and a <= 99 and b <= 99 else None


def _parse_call(s: str):
    """Parse 'f(x, g(y, z))' into nested tuples; numbers become floats, names stay strings."""
    s = s.strip()
    m = re.fullmatch(r"([a-z_]+)\((.*)\)", s, flags=re.S)
    if not m:
        return float(s) if re.fullmatch(r"-?\d+(\.\d+)?", s) else s
    args, depth, cur = [], 0, ""
    for ch in m.group(2):
        if ch == "," and depth == 0:
            args.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    args.append(cur)
    return (m.group(1), *[_parse_call(a) for a in args])


def _chain(node):
    """Flatten a formula tree into (start, [(op, x), ...]) when it is a left chain of integer ops."""
    if isinstance(node, float):
        return (int(node), []) if node.is_integer() and node >= 0 else None
    if not isinstance(node, tuple) or node[0] not in MATHQA_OP or len(node) != 3:
        return None
    op, left, right = MATHQA_OP[node[0]], node[1], node[2]
    if isinstance(left, float) and isinstance(right, tuple) and op in "+*":
        left, right = right, left  # commutative: put the nested part first
    if not isinstance(right, float) or not right.is_integer() or right < 0:
        return None
    inner = _chain(left)
    if inner is None:
        return None
    start, ops = inner
    return start, ops + [(op, int(right))]


def convert_mathqa(item: dict) -> tuple[taskworld.Problem, str] | None:
    """A question_with_mathematical_hint item -> (chain problem, correct choice) when it fits, else None."""
    question, _, formula = item["input"].rpartition("\n")
    tree = _parse_call(formula.strip())
    ch = _chain(tree)
    if ch is None or not ch[1]:
        return None
    start, ops = ch
    p = taskworld.Problem(start, tuple(ops))
    target = [k for k, v in item["target_scores"].items() if v == 1]
    if not p.in_range(99) or any(op == "*" and x > 9 for op, x in ops) or len(target) != 1:
        return None
    try:
        if float(target[0]) != p.answer:
            return None  # the answer key disagrees with the formula: skip rather than guess
    except ValueError:
        return None
    return p, target[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sdist", type=Path, default=SDIST)
    ap.add_argument("--per-task", type=int, default=60, help="items kept per arithmetic subtask (seeded sample)")
    ap.add_argument("--out", type=Path, default=taskworld.problems.BIGBENCH_FILE)
    args = ap.parse_args(argv)
    try:
        sdist = fetch(args.sdist)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    sha = sha256_file(sdist)
    rows, counts = [], {}
    with tarfile.open(sdist) as tar:
        canary = None
        for sub in ARITH:
            d = json.load(tar.extractfile(f"{BASE}arithmetic/{sub}/task.json"))
            canary = d.get("canary", canary)
            kept = [(ex, convert_arith(ex["input"])) for ex in d["examples"]]
            kept = [(ex, p) for ex, p in kept if p is not None and str(p.answer) == ex["target"]]
            random.Random(sub).shuffle(kept)
            counts[f"arithmetic/{sub}"] = {"items": len(d["examples"]), "expressible": len(kept),
                                           "kept": min(len(kept), args.per_task)}
            for ex, p in kept[: args.per_task]:
                rows.append({"task": f"arithmetic/{sub}", "input": ex["input"], "target": ex["target"],
                             "problem": p.text, "answer": p.answer, "n_steps": p.n_steps})
        sub = "elementary_math_qa/question_with_mathematical_hint"
        d = json.load(tar.extractfile(f"{BASE}{sub}/task.json"))
        kept = []
        for ex in d["examples"]:
            c = convert_mathqa(ex)
            if c is not None:
                kept.append((ex, *c))
        seen, uniq = set(), []
        for ex, p, tgt in kept:
            if p.text not in seen:
                seen.add(p.text)
                uniq.append((ex, p, tgt))
        counts[sub] = {"items": len(d["examples"]), "expressible": len(uniq), "kept": len(uniq)}
        for ex, p, tgt in uniq:
            rows.append({"task": sub, "input": ex["input"], "target": tgt, "problem": p.text,
                         "answer": p.answer, "n_steps": p.n_steps})
    header = {"source": "PyPI sdist bigbench==1.0.0 (https://pypi.org/project/bigbench/1.0.0/)",
              "sdist_sha256": sha, "licence": "Apache-2.0 (BIG-bench, github.com/google/BIG-bench)",
              "canary": canary, "counts": counts,
              "rebuild": "python scripts/build_bigbench_subset.py"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        f.write(json.dumps(header) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(json.dumps(counts, indent=1))
    print(f"wrote {len(rows)} items to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
