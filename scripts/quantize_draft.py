"""Quantise the token-level draft of notebook 07: an fp16 pair (format /1) in, an int8 pair (format /2) out.

Every 2-D weight matrix becomes int8 with one fp16 scale per output row (symmetric; --group N: one per row and
run of N input columns); the norms stay fp16 and the vocabulary int64. nblib.cast.draft.load dequantises at load
time. The script reports the largest weight error and, with --agreement, the held-out top-1 agreement with
SmolLM2 of both drafts, measured as scripts/train_draft.py measures it (its held-out rows, nblib.cast.draft.loss_on).
The report (the input's draft_report.json, if there is one, plus a "quantization" section) is written next to
the output.

    python scripts/train_draft.py ... --fp16 --out /tmp/draft_v2.safetensors    # see data/cast/README.md
    python scripts/quantize_draft.py /tmp/draft_v2.safetensors --agreement      # writes data/cast/draft.*
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from nblib import cast  # noqa: E402
from nblib.cache import read_safetensors  # noqa: E402


def weight_error(src: Path, dst: Path) -> dict:
    """Largest |fp16 weight - dequantised int8 weight| over all matrices, and the largest as a fraction of its scale."""
    a = read_safetensors(src, "python scripts/train_draft.py --fp16 (see data/cast/README.md)")
    b = read_safetensors(dst, f"python scripts/quantize_draft.py {src}")
    deq = cast.draft.dequantize_state(b, dst)
    worst, worst_name, over_scale = 0.0, None, 0.0
    for k, v in a.items():
        if k == "vocab":
            continue
        err = (v.float() - deq[k]).abs()
        if err.max().item() > worst:
            worst, worst_name = err.max().item(), k
        s = cast.draft.SCALE
        if k + s in b:
            scale = cast.draft.dequantize(torch.ones_like(b[k]), b[k + s])  # each element's scale
            over_scale = max(over_scale, (err / scale.clamp(min=1e-30)).max().item())
    return {"max_abs_weight_error": worst, "worst_tensor": worst_name, "max_error_over_scale": round(over_scale, 4),
            "max_abs_weight": max(v.float().abs().max().item() for k, v in a.items() if k != "vocab")}


def top1(draft, rows: list[dict]) -> list[torch.Tensor]:
    """The draft's top-1 (draft-vocabulary index) at every continuation position of each row."""
    out = []
    for r in rows:
        with torch.no_grad():
            h = draft.model.model(input_ids=torch.tensor([r["ids"]])).last_hidden_state[0]  # (T, d)
        out.append((h[r["start"] - 1:len(r["ids"]) - 1] @ draft.head_weight().T).argmax(-1))
    return out


def agreement(src: Path, dst: Path, n_prompts: int, new_tokens: int, gen_batch: int) -> dict:
    """Held-out top-1 agreement with SmolLM2 of the fp16 and the int8 draft (train_draft.py's rows and measure)."""
    from train_draft import continuation_rows, held_out_split

    from nblib import zoo

    target, tok = zoo.load_causal_lm("smollm2", device="cpu")
    rows, _ = continuation_rows(target, tok, n_prompts, new_tokens, gen_batch)
    _, val = held_out_split(rows, torch.Generator().manual_seed(0))
    fp16, int8 = cast.draft.load(src, target), cast.draft.load(dst, target)
    with torch.no_grad():
        acc16 = cast.draft.loss_on(fp16, val)[1]
        acc8 = cast.draft.loss_on(int8, val)[1]
    same = torch.cat([(x == y).float() for x, y in zip(top1(fp16, val), top1(int8, val), strict=True)])
    return {"val_sequences": len(val), "val_positions": int(same.numel()),
            "val_top1_agreement_fp16": round(acc16, 4), "val_top1_agreement_int8": round(acc8, 4),
            "int8_top1_same_as_fp16": round(same.mean().item(), 4)}


def main() -> None:
    """Quantise, measure, and write the int8 pair and the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="an fp16 draft pair (<stem>.safetensors + <stem>.json, format /1)")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "cast" / "draft.safetensors")
    ap.add_argument("--group", type=int, default=None, help="one scale per N input columns (default: per row)")
    ap.add_argument("--agreement", action="store_true", help="measure the held-out agreement of both (loads SmolLM2)")
    ap.add_argument("--n-prompts", type=int, default=288, help="the training data the held-out rows come from")
    ap.add_argument("--new-tokens", type=int, default=96)
    ap.add_argument("--gen-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    src = cast.draft.files(a.src)[0]
    report_in = src.parent / "draft_report.json"
    report = json.loads(report_in.read_text()) if report_in.exists() else {}  # read before out may overwrite it
    t0 = time.perf_counter()
    out = cast.draft.quantize_checkpoint(src, a.out, group=a.group)
    q = {"format": cast.draft.FORMAT, "scheme": "symmetric int8, one fp16 scale per output row" if a.group is None
         else f"symmetric int8, one fp16 scale per output row and group of {a.group} input columns",
         "group": a.group, "input": f"{src.name} ({src.stat().st_size:,} bytes, format {cast.draft.FORMAT_FP16})",
         "bytes_fp16": src.stat().st_size, "bytes_int8": out.stat().st_size,
         "checkpoint_mb": round(out.stat().st_size / 2**20, 2), **weight_error(src, out)}
    if a.agreement:
        q.update(agreement(src, out, a.n_prompts, a.new_tokens, a.gen_batch))
    q.update({"seconds": round(time.perf_counter() - t0), "threads": a.threads, "loadavg": os.getloadavg(),
              "command": "python scripts/quantize_draft.py " + " ".join(sys.argv[1:])})
    report["quantization"] = q
    (out.parent / "draft_report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(q, indent=1))


if __name__ == "__main__":
    main()
