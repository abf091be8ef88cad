"""Why step one matters, on a real decoder (issue 28, part 3): SmolLM2-135M's MLPs as 24 experts of 64.

Stages (each appends to data/d2dmoe/smollm2_oracle.json; run them in order, or all with no flag):

    python scripts/d2dmoe_smollm2.py --oracle      # original SiLU model: perplexity vs expert-FLOPs share
    python scripts/d2dmoe_smollm2.py --finetune    # time-boxed ReLU + LoRA + L1 fine-tune -> smollm2_relu_lora.safetensors
    python scripts/d2dmoe_smollm2.py --after       # the same oracle measurement on the fine-tuned model + summary

Evaluation text: the 30 MT-Bench questions + GPT-4 reference answers of data/lwe/mtbench_pairs.jsonl
(first --max-len tokens of each). Training text: Python's pydoc topics + stdlib/template prompts (never MT-Bench).
2 CPU threads; the load average is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nblib import zoo  # noqa: E402
from nblib.d2dmoe import decoder as dec  # noqa: E402

TAUS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3]
TAUS_NO_FIRST = [0.01, 0.02, 0.05, 0.1]
TAUS_AFTER = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3]  # tau = 0 is the dense run (added as a row)
TAUS_AFTER_NO_FIRST = [0.05]


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo when present)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def load_json() -> dict:
    """The current record (empty when absent)."""
    return json.loads(dec.ORACLE_JSON.read_text()) if dec.ORACLE_JSON.exists() else {}


def save_json(rec: dict) -> None:
    """Write the record and its summary."""
    rec["summary"] = summary(rec)
    dec.ORACLE_JSON.write_text(json.dumps(rec, indent=1) + "\n")
    print(f"wrote {dec.ORACLE_JSON}")
    print(json.dumps(rec["summary"], indent=1))


def summary(rec: dict) -> dict:
    """The numbers the benchmark reads."""
    out = {"model": "SmolLM2-135M-Instruct", "n_experts": 24, "expert_size": 64,
           "flops_share_convention": "executed experts / all experts over positions >= 1 (position 0 excluded)"}
    o = rec.get("original")
    if o:
        base = o["dense_ppl"]
        on = o["curve_first_dense"]
        p95 = dec.ppl_at_share(on, 0.95)
        p98 = dec.ppl_at_share(on, 0.98)
        out.update({"smollm2_dense_ppl": base, "smollm2_oracle_ppl_at_95pct": p95,
                    "smollm2_oracle_ppl_increase_at_95pct": p95 / base - 1,
                    "smollm2_oracle_ppl_increase_at_98pct": p98 / base - 1,
                    "smollm2_oracle_no_first_dense_min_ppl": min(r["ppl"] for r in o["curve_no_first_dense"]),
                    "eval_tokens": o["tokens"]})
        out["modelled_decode_step_ratio_at_95pct"] = roofline_ratio(rec, 0.95)
    a = rec.get("after")
    if o and a:
        base = o["dense_ppl"]
        on = a["curve_first_dense"]
        p95 = dec.ppl_at_share(on, 0.95)
        target = dec.ppl_at_share(o["curve_first_dense"], 0.95)
        share = dec.share_at_ppl(on, target)
        out.update({
            "smollm2_finetuned_dense_ppl": a["dense_ppl"],
            "smollm2_finetuned_dense_ppl_increase": a["dense_ppl"] / base - 1,
            "smollm2_finetuned_ppl_increase": p95 / base - 1,
            "smollm2_finetuned_ppl_increase_share": 0.95,
            "smollm2_finetuned_ppl_increase_note": "fine-tuned model under the oracle at 95 % expert-FLOPs share "
                                                   "(first token dense) vs the ORIGINAL dense perplexity",
            "smollm2_finetuned_share_at_original_95pct_ppl": share if share == share else None,  # null: never reached
            "zero_fraction_before": o.get("zero_fraction"), "zero_fraction_after": a.get("zero_fraction"),
            "finetune_tokens": rec.get("finetune", {}).get("tokens"),
            "finetune_minutes": rec.get("finetune", {}).get("train_minutes"),
        })
        if share == share:  # not NaN
            out["modelled_decode_step_ratio_finetuned_at_original_95pct_ppl"] = roofline_ratio(rec, share)
        lowest = min(on, key=lambda r: r["flops_share"])
        out["modelled_decode_step_ratio_finetuned_at_lowest_share"] = roofline_ratio(rec, lowest["flops_share"])
        out["finetuned_lowest_share"] = {"share": lowest["flops_share"], "ppl": lowest["ppl"], "tau": lowest["tau"]}
    return out


def roofline_ratio(rec: dict, share: float) -> float:
    """MODELLED batch-1 decode step ratio at an expert share (bf16 weights, D2DMoE routers included)."""
    b = rec["roofline"]["bytes"]
    return dec.decode_step_ratio(b["total"], b["mlp"], share, b["router"])


def stamp(rec_part: dict, t0: float) -> None:
    """Wall time, load average, CPU and threads into a record part."""
    rec_part.update({"wall_s": round(time.perf_counter() - t0, 1), "loadavg": list(os.getloadavg()),
                     "cpu": cpu_name(), "threads": torch.get_num_threads()})


def measure(model, seqs, taus, taus_no_first, tag: str) -> dict:
    """Dense perplexity, zero fraction, then the oracle curves with and without the first token dense."""
    t0 = time.perf_counter()
    ppl, n = dec.perplexity(model, seqs)
    print(f"[{tag}] dense ppl {ppl:.3f} over {n} predicted tokens ({time.perf_counter() - t0:.0f} s) "
          f"load {os.getloadavg()}", flush=True)
    zf = dec.zero_fraction(model, seqs[:8])
    print(f"[{tag}] MLP hidden zero fraction {zf['zero_fraction']:.3f}", flush=True)
    t1 = time.perf_counter()
    dec.to_experts(model, 24, split="kmeans")
    split_s = time.perf_counter() - t1
    print(f"[{tag}] split into 24 experts of 64 in {split_s:.0f} s", flush=True)
    on = dec.oracle_curve(model, seqs, taus, keep_first_dense=True)
    if 0.0 not in taus:  # tau = 0 runs every expert: the dense run is that point
        on.insert(0, {"tau": 0.0, "keep_first_dense": True, "ppl": ppl, "tokens": n, "flops_share": 1.0,
                      "flops_share_all": 1.0, "wall_s": 0.0, "from": "the dense run (tau = 0 runs every expert)"})
    off = dec.oracle_curve(model, seqs, taus_no_first, keep_first_dense=False)
    part = {"dense_ppl": ppl, "tokens": n, "sequences": len(seqs), "zero_fraction": zf["zero_fraction"],
            "zero_fraction_per_layer": zf["zero_fraction_per_layer"], "split_s": round(split_s, 1),
            "curve_first_dense": on, "curve_no_first_dense": off}
    stamp(part, t0)
    return part


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oracle", action="store_true")
    ap.add_argument("--finetune", action="store_true")
    ap.add_argument("--after", action="store_true")
    ap.add_argument("--max-len", type=int, default=256, help="tokens per MT-Bench item")
    ap.add_argument("--minutes", type=float, default=8.0, help="fine-tune time box")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weight", type=float, default=3e-4, help="L1 weight (ramped linearly)")
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args()
    if not (a.oracle or a.finetune or a.after):
        a.oracle = a.finetune = a.after = True
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rec = load_json()
    model, tok = zoo.load_causal_lm("smollm2", device="cpu")
    seqs = dec.mtbench_sequences(tok, max_len=a.max_len)
    rec["eval_text"] = ("data/lwe/mtbench_pairs.jsonl: 30 MT-Bench first-turn questions, each + blank line + its "
                        f"GPT-4 reference answer, first {a.max_len} tokens, one sequence each, no padding")
    rec["roofline"] = {"bytes": dec.smollm2_bytes(model.config, bytes_per_param=2.0),
                       "note": "MODELLED, not measured: batch-1 decode time ~ weight bytes read (bf16), tied "
                               "embedding/head read once per step, a D2DMoE router (576->128->24) per layer read "
                               "every step; ratio = (non-MLP + kept share x MLP + router bytes) / dense bytes"}
    if a.oracle:
        rec["original"] = measure(model, seqs, TAUS, TAUS_NO_FIRST, "original")
        for part in ("curve_first_dense", "curve_no_first_dense"):
            for r in rec["original"][part]:
                r["modelled_decode_step_ratio"] = roofline_ratio(rec, r["flops_share"])
        save_json(rec)
        model, tok = zoo.load_causal_lm("smollm2", device="cpu")
    if a.finetune:
        t0 = time.perf_counter()
        windows = dec.train_windows(tok, 256)
        print(f"[finetune] {len(windows)} training windows of 256 tokens", flush=True)
        model, state, hist = dec.relu_sparsity_finetune(model, windows, max_seconds=a.minutes * 60, batch=4,
                                                       lr=a.lr, weight=a.weight, rank=8)
        from safetensors.torch import save_file

        save_file(state, str(dec.LORA_FILE))
        size = dec.LORA_FILE.stat().st_size
        log = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()} for row in hist.log]
        rec["finetune"] = {
            "recipe": "SiLU -> ReLU in the MLP gate; LoRA rank 8 (alpha = rank) on gate_proj and up_proj of all 30 "
                      "layers + post-attention RMSNorm weights in full; next-token loss + w(t) * L1 of the MLP "
                      f"hidden activations, w ramped linearly 0 -> {a.weight} over the time box; AdamW lr {a.lr}, "
                      "clip 1.0, batch 4 x 256 tokens",
            "train_text": "Python 3.11 pydoc_data.topics (Python docs, PSF licence) interleaved with the "
                          "python-stdlib and template prompts of data/cast/train_prompts.jsonl (PSF / written here); "
                          "no MT-Bench, HumanEval or BIG-bench text",
            "windows": len(windows), "tokens": hist.tokens, "steps": len(hist.losses) if hasattr(hist, "losses")
            else None, "train_minutes": round((time.perf_counter() - t0) / 60, 2), "log": log,
            "lora_file": dec.LORA_FILE.name, "lora_bytes": size}
        stamp(rec["finetune"], t0)
        save_json(rec)
        model, tok = zoo.load_causal_lm("smollm2", device="cpu")
    if a.after:
        dec.load_finetuned(model)
        rec["after"] = measure(model, seqs, TAUS_AFTER, TAUS_AFTER_NO_FIRST, "fine-tuned")
        for part in ("curve_first_dense", "curve_no_first_dense"):
            for r in rec["after"][part]:
                r["modelled_decode_step_ratio"] = roofline_ratio(rec, r["flops_share"])
        save_json(rec)


if __name__ == "__main__":
    main()
