"""Build data/d2dmoe/multiemo_subset.jsonl from BIG-bench's multiemo/all_text_en (bigbench==1.0.0 sdist).

The task JSON ships inside the PyPI source distribution bigbench==1.0.0 (Apache-2.0,
358 MB). This script fetches that sdist once with pip (never installs it) through
`nblib.cache.fetch_source_archive`, which checks its pinned sha256 (also before
reusing a copy), reads `multiemo/all_text_en/task.json` straight from the tarball,
and keeps a seeded random subset: `--train` reviews for training and `--test` for
evaluation (disjoint), each review cut to its first `--max-chars` characters (the
models read only the first 64 word pieces, about 300 characters).

Usage: python scripts/d2dmoe_build_multiemo.py [--folder /tmp/bb] [--train 3000] [--test 1000]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib.cache import fetch_source_archive, sha256_file  # noqa: E402
from nblib.d2dmoe.data import LABELS, MULTIEMO_FILE  # noqa: E402

REQUIREMENT = "bigbench==1.0.0"
MEMBER = "bigbench-1.0.0/bigbench/benchmark_tasks/multiemo/all_text_en/task.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path("/tmp/bb"), help="where the sdist is (or is downloaded)")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--max-chars", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=MULTIEMO_FILE)
    args = ap.parse_args(argv)
    try:
        sdist = fetch_source_archive(REQUIREMENT, args.folder)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    with tarfile.open(sdist) as tar:
        task = json.load(tar.extractfile(MEMBER))
    items = []
    for i, ex in enumerate(task["examples"]):
        gold = [k for k, v in ex["target_scores"].items() if v == 1]
        if len(gold) != 1 or gold[0] not in LABELS:
            continue
        items.append({"index": i, "text": ex["input"][: args.max_chars], "label": gold[0]})
    random.Random(args.seed).shuffle(items)
    if args.train + args.test > len(items):
        raise SystemExit(f"error: asked for {args.train + args.test} reviews, the task has {len(items)}")
    rows = [{**r, "split": "train"} for r in items[: args.train]]
    rows += [{**r, "split": "test"} for r in items[args.train: args.train + args.test]]
    header = {"source": "PyPI sdist bigbench==1.0.0 (https://pypi.org/project/bigbench/1.0.0/), "
                        "benchmark_tasks/multiemo/all_text_en/task.json",
              "sdist_sha256": sha256_file(sdist), "licence": "Apache-2.0, as distributed in BIG-bench (github.com/google/BIG-bench); the reviews "
              "are MultiEmo (Kocon et al., CLARIN-PL): see that dataset's own terms before redistributing",
              "canary": task.get("canary"), "task_items": len(task["examples"]), "seed": args.seed,
              "max_chars": args.max_chars, "labels": list(LABELS),
              "rebuild": "python scripts/d2dmoe_build_multiemo.py"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        f.write(json.dumps(header) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"wrote {len(rows)} reviews ({args.train} train, {args.test} test) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
