"""Rebuild everything in data/koala: the MNIST subset, the tiny teacher, the classifier, the students.

Steps (each can be run alone; `all` runs them in order):

  data        read BIG-bench's mnist_ascii from the bigbench==1.0.0 sdist (downloaded with
              `pip download --no-deps --no-binary :all: bigbench==1.0.0 -d /tmp/bb` when
              missing; never installed; its sha256 is checked against the pin in
              nblib.cache.SOURCE_ARCHIVES, also before reusing a copy) and write
              data/koala/mnist_subset.npz
  teacher     train the SDXL-shaped tiny teacher from scratch -> teacher.safetensors
  classifier  train the caption classifier on the real digits -> classifier.safetensors
  students    derive BK / KOALA / KOALA-nomid / KOALA-T1 students from the teacher, initialise them
              block by block, distil them (feature-KD ablation on KOALA) -> student_*.safetensors
  eval        score every model (caption accuracy, Frechet distance) -> results.json

Usage: python scripts/train_koala.py all [--teacher-steps N] [--student-steps N] [--eval-n N]
Runs on two CPU cores with torch.set_num_threads(1) in about 40 minutes (`all`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib import koala  # noqa: E402
from nblib.cache import fetch_source_archive  # noqa: E402

OUT = ROOT / "data" / "koala"
SDIST = Path("/tmp/bb/bigbench-1.0.0.tar.gz")

# (recipe, feature-KD choice): the ablation runs on KOALA at equal steps; BK uses BK-SDM's own LF features
STUDENT_RUNS = [
    ("KOALA", "none"),
    ("KOALA", "lf"),
    ("KOALA", koala.tiny.KOALA_FEATURES),
    ("BK", "lf"),
    ("KOALA-nomid", koala.tiny.KOALA_FEATURES),
    ("KOALA-T1", koala.tiny.KOALA_FEATURES),
]


def step_data(args) -> None:
    """Write data/koala/mnist_subset.npz from the pinned bigbench sdist (reused only when its sha256 matches)."""
    try:
        sdist = fetch_source_archive("bigbench==1.0.0", SDIST.parent)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    sub = koala.tiny.build_mnist_subset(sdist, n_train=args.n_train, n_test=args.n_test, seed=0)
    np.savez_compressed(OUT / "mnist_subset.npz", **sub)
    print(f"mnist subset: {len(sub['train_labels'])} train + {len(sub['test_labels'])} test of "
          f"{int(sub['n_source'])} 28x28 digits")


def _states():
    return koala.tiny.text_states()


def step_teacher(args) -> None:
    data, states = koala.tiny.load_digits(), _states()
    unet, _ = koala.tiny.build_tiny("teacher", seed=0)
    t0 = time.perf_counter()
    hist = koala.distillation.train_denoiser(unet, data, states, steps=args.teacher_steps, batch=args.batch, lr=2e-3, seed=0)
    secs = time.perf_counter() - t0
    koala.tiny.save_model(unet, OUT / "teacher.safetensors",
                  {"steps": args.teacher_steps, "batch": args.batch, "seconds": round(secs, 1)})
    _log({"teacher": {"steps": args.teacher_steps, "batch": args.batch, "seconds": secs,
                      "final_loss": float(np.mean(hist[-50:])), "loss_curve": hist[:: max(1, len(hist) // 100)]}})
    print(f"teacher: {args.teacher_steps} steps in {secs:.0f} s, final loss {np.mean(hist[-50:]):.4f}")


def step_classifier(args) -> None:
    data = koala.tiny.load_digits()
    clf, acc = koala.metrics.train_classifier(data, steps=args.clf_steps)
    koala.tiny.save_model(clf, OUT / "classifier.safetensors", {"test_acc": acc})
    _log({"classifier": {"test_acc": acc, "steps": args.clf_steps}})
    print(f"classifier test accuracy on real digits: {acc:.3f}")


def step_students(args) -> None:
    data, states = koala.tiny.load_digits(), _states()
    teacher, _ = koala.tiny.load_tiny("teacher")
    runs = STUDENT_RUNS if not args.only else [r for r in STUDENT_RUNS if f"{r[0]}:{r[1]}" in args.only]
    for recipe, feats in runs:
        student, layout = koala.tiny.build_tiny(recipe)
        report = koala.recipes.init_student(student, teacher, layout)
        cfg = koala.distillation.DistillConfig(features=feats, steps=args.student_steps, batch=args.batch, lr=1e-3, seed=1)
        t0 = time.perf_counter()
        hist = koala.distill(student, teacher, layout, data, states, cfg)
        secs = time.perf_counter() - t0
        name = koala.tiny.checkpoint_name(recipe, feats)
        fname = "student_" + name.replace(":", "_").replace("+", "_").replace("@", "_")
        koala.tiny.save_model(student, OUT / f"{fname}.safetensors", {"distill": cfg.__dict__, "seconds": round(secs, 1)})
        last = {k: float(np.mean([h[k] for h in hist[-50:]])) for k in hist[0]}
        _log({"students": {name: {"recipe": recipe, "features": feats, "config": cfg.__dict__, "seconds": secs,
                                  "init_copied": report["matched"], "init_mismatched": len(report["mismatched"]),
                                  "final_losses": last}}})
        print(f"{name}: {secs:.0f} s, copied {report['matched']} tensors, final {last}")


def step_eval(args) -> None:
    data, states = koala.tiny.load_digits(), _states()
    clf = koala.metrics.load_classifier()
    out = {}
    names = ["teacher"] + [koala.tiny.checkpoint_name(r, f) for r, f in STUDENT_RUNS]
    if args.only:
        names = [n for n in names if n in args.only]
    for name in names:
        try:
            unet, _ = koala.tiny.load_tiny(name)
        except FileNotFoundError as e:
            print(f"skip {name}: {e}")
            continue
        t0 = time.perf_counter()
        out[name] = koala.metrics.evaluate(unet, clf, states, data["test_x"], n=args.eval_n, steps=args.eval_steps)
        out[name]["params"] = koala.count_params(unet)
        print(f"{name}: {out[name]} ({time.perf_counter() - t0:.0f} s)")
    _log({"eval": out})


def _log(update: dict) -> None:
    """Merge `update` into results.json under a file lock (student runs may go in parallel)."""
    import fcntl

    # lock results.json itself (rewritten in place, same inode): no lock file is left in data/
    with open(OUT / "results.json", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _merge(update)


def _merge(update: dict) -> None:
    path = OUT / "results.json"
    text = path.read_text() if path.exists() else ""
    res = json.loads(text) if text.strip() else {}
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(res.get(k), dict) and k in ("students", "eval"):
            res[k].update(v)
        else:
            res[k] = v
    path.write_text(json.dumps(res, indent=1, sort_keys=True))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["data", "teacher", "classifier", "students", "eval", "all"])
    p.add_argument("--n-train", type=int, default=8000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--teacher-steps", type=int, default=1500)
    p.add_argument("--student-steps", type=int, default=400)
    p.add_argument("--clf-steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--eval-n", type=int, default=1000)
    p.add_argument("--eval-steps", type=int, default=20)
    p.add_argument("--only", nargs="*", help="student runs (or, with eval, models) to (re)do, e.g. KOALA:none")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    steps = ["data", "teacher", "classifier", "students", "eval"] if args.step == "all" else [args.step]
    for s in steps:
        globals()[f"step_{s}"](args)


if __name__ == "__main__":
    main()
