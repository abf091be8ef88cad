"""Benchmark KOALA: SDXL-scale ratios (meta device) and the committed laptop-scale teacher vs its students.

    python benchmarks/koala.py [--n 100] [--steps 20] [--repeats 3]

Everything is measured in this one run: parameters, FLOPs per denoising step, latency per image
(ancestral DDPM + classifier-free guidance, batch 1), working memory, caption accuracy and the Frechet
distance in the caption classifier's feature space. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nblib import koala  # noqa: E402

STUDENTS = ["KOALA:sa+lf@ends", "KOALA:lf", "KOALA:none", "BK:lf", "KOALA-nomid:sa+lf@ends", "KOALA-T1:sa+lf@ends"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="generated images per model for accuracy and FD")
    ap.add_argument("--steps", type=int, default=20, help="sampling steps per image")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved latency rounds (median and range kept)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if min(args.n, args.steps, args.repeats) < 1 or args.n < 10:
        ap.error("--n must be >= 10 and --steps, --repeats >= 1")
    torch.set_num_threads(args.threads)

    print("SDXL scale (diffusers UNet2DConditionModel on the meta device, FLOPs at 1024x1024, batch 1)")
    sdxl = koala.sdxl_summary()
    print(sdxl[["params", "transformer layers", "resnets", "GFLOPs / step", "params vs SDXL", "FLOPs vs SDXL"]]
          .to_string(float_format=lambda v: f"{v:,.3f}"))

    print(f"\nLaptop scale: 16x16 MNIST digits, {args.steps} DDPM steps, guidance 2, batch 1, "
          f"{torch.get_num_threads()} thread(s); quality over {args.n} images per model")
    data, states = koala.tiny.load_digits(), koala.tiny.text_states()
    clf = koala.metrics.load_classifier()
    rows, unets = {}, {}
    for name in ["teacher"] + STUDENTS:
        try:
            unet, _ = koala.tiny.load_tiny(name)
        except FileNotFoundError as e:
            print(f"  skip {name}: {e}")
            continue
        unets[name] = unet
        c = koala.metrics.measure_costs(unet, states, steps=args.steps, time_it=False)
        q = koala.metrics.evaluate(unet, clf, states, data["test_x"], n=args.n, steps=args.steps)
        rows[name] = {**c, "caption_acc": q["caption_acc"], "fd": q["fd"]}
    # latency: every model timed in rounds (teacher, student 1, student 2, ...), ratios paired by round
    lat = koala.metrics.interleaved_latency(unets, states, steps=args.steps, repeats=args.repeats)
    for name, r in rows.items():
        r["latency_ms"], r["latency_ms_per_image_b16"] = lat[name]["ms_per_image_b1"], lat[name]["ms_per_image_b16"]
    t = rows["teacher"]
    head = (f"{'model':<24}{'params':>10}{'MFLOPs/step':>13}{'ms/img b1':>10}{'ms/img b16':>11}{'work MB':>9}"
            f"{'caption acc':>12}{'FD':>8}")
    print(head)
    for name, r in rows.items():
        print(f"{name:<24}{r['params']:>10,}{r['flops_per_step'] / 1e6:>13.1f}{r['latency_ms']:>10.1f}"
              f"{r['latency_ms_per_image_b16']:>11.1f}{r['work_mb']:>9.1f}{r['caption_acc']:>12.3f}{r['fd']:>8.2f}")
    print(f"{'real test digits':<24}{'':>65}{koala.metrics.classifier_accuracy(clf, data['test_x'], data['test_y']):>12.3f}")
    print(f"\nLatency / teacher's, paired by round over {args.repeats} interleaved rounds: median [min-max] "
          f"(load average {os.getloadavg()[0]:.2f})")
    for name in STUDENTS:
        if name in lat:
            b1, b16 = lat[name]["latency_ratio_b1_range"], lat[name]["latency_ratio_b16_range"]
            print(f"{name:<24} b1 {lat[name]['latency_ratio_b1']:.3f} [{b1[0]:.3f}-{b1[1]:.3f}]   "
                  f"b16 {lat[name]['latency_ratio_b16']:.3f} [{b16[0]:.3f}-{b16[1]:.3f}]")

    out = {"benchmark": "koala", "n_images": args.n, "steps": args.steps, "threads": torch.get_num_threads(),
           "sdxl_params": int(sdxl.loc["SDXL-Base", "params"]),
           "koala_1b_params": int(sdxl.loc["KOALA-1B", "params"]),
           "koala_700m_params": int(sdxl.loc["KOALA-700M", "params"]),
           "koala_1b_param_ratio": round(float(sdxl.loc["KOALA-1B", "params vs SDXL"]), 4),
           "koala_700m_param_ratio": round(float(sdxl.loc["KOALA-700M", "params vs SDXL"]), 4),
           "koala_1b_flop_ratio": round(float(sdxl.loc["KOALA-1B", "FLOPs vs SDXL"]), 4),
           "koala_700m_flop_ratio": round(float(sdxl.loc["KOALA-700M", "FLOPs vs SDXL"]), 4),
           "sdxl_tflops_per_step_1024": round(float(sdxl.loc["SDXL-Base", "GFLOPs / step"]) / 1e3, 3)}
    for name, r in rows.items():
        key = name.replace(":", "_").replace("+", "_").replace("@", "_").replace("-", "_").lower()
        out[key] = {"params": r["params"], "mflops_per_step": round(r["flops_per_step"] / 1e6, 2),
                    "latency_ms": round(r["latency_ms"], 1),
                    "latency_ms_per_image_b16": round(r["latency_ms_per_image_b16"], 2), "work_mb": round(r["work_mb"], 1),
                    "caption_acc": round(r["caption_acc"], 4), "fd": round(r["fd"], 3)}
    out["load_average"] = round(os.getloadavg()[0], 2)
    out["students"] = {name: {"latency_ratio_b1": round(lat[name]["latency_ratio_b1"], 4),
                              "latency_ratio_b16": round(lat[name]["latency_ratio_b16"], 4),
                              "latency_ratio_b1_spread": round(lat[name]["latency_ratio_b1_spread"], 4),
                              "latency_ratio_b16_spread": round(lat[name]["latency_ratio_b16_spread"], 4),
                              "caption_acc_retained": round(rows[name]["caption_acc"] / max(t["caption_acc"], 1e-9), 4),
                              "flop_ratio": round(rows[name]["flops_per_step"] / t["flops_per_step"], 4)}
                       for name in STUDENTS if name in rows}
    for r in out["students"].values():
        r["meets_goal"] = bool(r["caption_acc_retained"] >= 0.9 and r["latency_ratio_b1"] <= 0.5
                               and r["latency_ratio_b16"] <= 0.5)
    out["goal_students"] = [name for name, r in out["students"].items() if r["meets_goal"]]
    print(f"students at <= 50 % of the teacher's latency at batch 1 and 16 with >= 90 % of its caption accuracy: "
          f"{', '.join(out['goal_students']) or 'none'}")
    main_student = STUDENTS[0]
    if main_student in rows:
        s = rows[main_student]
        out["koala_acc_retained"] = round(s["caption_acc"] / max(t["caption_acc"], 1e-9), 4)
        out["koala_latency_ratio"] = out["students"][main_student]["latency_ratio_b1"]
        out["koala_latency_ratio_b16"] = out["students"][main_student]["latency_ratio_b16"]
        out["koala_flop_ratio"] = round(s["flops_per_step"] / t["flops_per_step"], 4)
        out["goal_90pct_acc_at_half_latency"] = bool(out["koala_acc_retained"] >= 0.9
                                                     and out["koala_latency_ratio"] <= 0.5)
        print(f"\nKOALA student keeps {out['koala_acc_retained']:.0%} of the teacher's caption accuracy at "
              f"{out['koala_latency_ratio']:.0%} of its latency at batch 1 ({out['koala_latency_ratio_b16']:.0%} "
              f"per image at batch 16, {out['koala_flop_ratio']:.0%} of its FLOPs) (goal: >= 90 % at <= 50 %: "
              f"{'met' if out['goal_90pct_acc_at_half_latency'] else 'not met'})")
    if "KOALA:none" in rows and main_student in rows:
        sa, none = rows[main_student], rows["KOALA:none"]
        out["sa_kd_beats_no_feature_kd"] = bool(sa["caption_acc"] > none["caption_acc"]
                                                or (sa["caption_acc"] == none["caption_acc"] and sa["fd"] < none["fd"]))
        print(f"feature-KD ablation at equal steps: SA+LF acc {sa['caption_acc']:.3f} FD {sa['fd']:.2f} vs "
              f"no feature KD acc {none['caption_acc']:.3f} FD {none['fd']:.2f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
