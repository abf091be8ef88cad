"""Train the feature-level (EAGLE-style) draft of notebook 07 on SmolLM2's own features.

The draft (nblib.cast.eagle.FeatureDraft: fc + one Llama block + norm, the
target's frozen embedding and LM head) learns to predict SmolLM2's next
feature and greedy token from its current feature and the next token's
embedding. Training data are SmolLM2's features, computed by prefilling text
(no generation needed) plus its own greedy continuations of the training
prompts (what it will be asked to predict at decoding time):

1. continuations: SmolLM2's batched greedy replies to data/cast/train_prompts.jsonl (chat template):
   stdlib and topic instructions, BIG-bench questions, and the MT-Bench / HumanEval items that are not
   evaluation prompts (scripts/build_prompts.py);
2. code: windows of the running Python's standard-library source;
3. prose: windows of the Python documentation shipped with it (pydoc_data/topics.py).

Features are kept in memory as fp16 (about 1.2 KB per token), never written
to disk; the draft vocabulary is every token SmolLM2 chose in this data. Only
fc, the block and the norm are saved: data/cast/eagle.safetensors + .json.

    python scripts/train_eagle.py --threads 2 --minutes 90   # about 2 h 15 min on two CPU cores, all included

The replies are cached in ~/.cache/nblib/cast (keyed by the prompts), and the draft is written to
~/.cache/nblib/cast/eagle_partial.safetensors at every log, so an interrupted run loses little.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import sysconfig
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nblib import cast, training, zoo  # noqa: E402
from nblib.cache import cache_dir  # noqa: E402
from nblib.cast import eagle  # noqa: E402


def continuations(model, tok, prompts: list[str], new_tokens: int, batch: int) -> list[tuple[list[int], int]]:
    """SmolLM2's batched greedy replies: (prompt + continuation ids, prompt length) per prompt (eos kept)."""
    return cast.bench.greedy_replies(model, tok, prompts, new_tokens, batch)


def text_windows(tok, files: list[Path], n_tokens: int, window: int) -> list[list[int]]:
    """Consecutive `window`-token pieces of the files' text, n_tokens in all."""
    ids: list[int] = []
    for f in files:
        ids += tok(f.read_text(errors="ignore"), add_special_tokens=False)["input_ids"]
        if len(ids) >= n_tokens:
            break
    return [ids[i:i + window] for i in range(0, min(len(ids), n_tokens) - window + 1, window)]


def features(model, rows: list[list[int]], batch: int, desc: str, starts: list[int] | None = None) -> list[dict]:
    """The target's features (fp16, (T, d)) and greedy next tokens (T,) on each row, batched with right padding.

    starts[i]: the first position of row i whose label the loss counts (a reply's: its prompt length - 1, the
    position that predicts the first reply token); 0 for plain text.
    """
    out = []
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    res: dict[int, dict] = {}
    for s in tqdm(range(0, len(order), batch), desc=desc):
        idx = order[s:s + batch]
        width = max(len(rows[i]) for i in idx)
        ids = torch.tensor([rows[i] + [0] * (width - len(rows[i])) for i in idx])
        att = torch.tensor([[1] * len(rows[i]) + [0] * (width - len(rows[i])) for i in idx])
        with torch.no_grad():
            h = model.model(input_ids=ids, attention_mask=att).last_hidden_state  # (b, T, d) after the final norm
            lab = model.lm_head(h).argmax(-1)  # (b, T) greedy next token after each position
        for j, i in enumerate(idx):
            n = len(rows[i])
            res[i] = {"ids": torch.tensor(rows[i]), "feats": h[j, :n].half(), "labels": lab[j, :n],
                      "start": starts[i] if starts is not None else 0}
    for i in range(len(rows)):
        out.append(res[i])
    return out


def collate(rows: list[dict], lut: torch.Tensor):
    """Right-padded batch: feats (B, T, d) fp32, tokens (B, T), draft-vocab labels (B, T), valid (B, T).

    valid marks the positions the loss counts: from each row's "start" (a reply's prompt tokens are context, not
    targets: the draft never guesses a prompt at decoding time) to its end.
    """
    T = max(len(r["ids"]) for r in rows)
    d = rows[0]["feats"].shape[1]
    B = len(rows)
    feats = torch.zeros(B, T, d)
    ids = torch.zeros(B, T, dtype=torch.long)
    lab = torch.full((B, T), -100, dtype=torch.long)
    valid = torch.zeros(B, T, dtype=torch.bool)
    for b, r in enumerate(rows):
        n = len(r["ids"])
        feats[b, :n], ids[b, :n], lab[b, :n] = r["feats"].float(), r["ids"], lut[r["labels"]]
        valid[b, r["start"]:n] = True
    return feats, ids, lab, valid


def evaluate(draft, rows: list[dict], lut, steps: int, batch: int = 8) -> dict:
    """Mean per-step top-1 agreement with the target on held-out rows (step 1 reads the real features)."""
    sums, n = {}, 0
    with torch.no_grad():
        for s in range(0, len(rows), batch):
            feats, ids, lab, valid = collate(rows[s:s + batch], lut)
            _, st = eagle.loss_on(draft, feats, ids, lab, steps=steps, valid=valid)
            for k, v in st.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
    return {k: round(v / n, 4) for k, v in sums.items()}


def main() -> None:
    """Build the data (features in memory), train the draft time-boxed, save it and a JSON report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-prompts", type=int, default=0, help="first n training prompts (0: all)")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--gen-batch", type=int, default=32)
    ap.add_argument("--code-tokens", type=int, default=60_000)
    ap.add_argument("--prose-tokens", type=int, default=30_000)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--minutes", type=float, default=45.0, help="training wall-time budget")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=8, help="sequences per step")
    ap.add_argument("--unroll", type=int, default=3, help="training-time-test steps (draft on its own features)")
    ap.add_argument("--vocab", type=int, default=8000, help="draft vocabulary: the most chosen target tokens")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "cast" / "eagle.safetensors")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t_all = time.perf_counter()
    target, tok = zoo.load_causal_lm("smollm2", device="cpu")
    for p in target.parameters():
        p.requires_grad_(False)
    prompts = [json.loads(line)["prompt"] for line in open(ROOT / "data" / "cast" / "train_prompts.jsonl")]
    prompts = prompts[:a.n_prompts or None]
    key = hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:12]  # the replies of exactly these prompts
    gen_path = cache_dir() / "cast" / f"eagle_continuations_{len(prompts)}_{a.new_tokens}_{key}.json"
    t0 = time.perf_counter()
    if gen_path.exists():  # the replies and the wall time they took when they were generated
        cached = json.loads(gen_path.read_text())
        conts, gen_s = cached["rows"], cached["seconds"]
    else:
        conts = continuations(target, tok, prompts, a.new_tokens, a.gen_batch)
        gen_s = time.perf_counter() - t0
        gen_path.parent.mkdir(parents=True, exist_ok=True)
        gen_path.write_text(json.dumps({"rows": conts, "seconds": gen_s, "threads": a.threads}))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    code = text_windows(tok, sorted(stdlib.glob("*.py")), a.code_tokens, a.window)
    prose = text_windows(tok, [stdlib / "pydoc_data" / "topics.py"], a.prose_tokens, a.window)
    t1 = time.perf_counter()
    data = {"continuations": features(target, [ids for ids, _ in conts], 16, "features: continuations",
                                      [max(0, n - 1) for _, n in conts]),
            "code": features(target, code, 8, "features: code"),
            "prose": features(target, prose, 8, "features: prose")}
    feat_s = time.perf_counter() - t1
    g = torch.Generator().manual_seed(0)
    val, train = [], []
    for rows in data.values():  # hold out 1 row in 16 of every source
        perm = torch.randperm(len(rows), generator=g).tolist()
        k = max(4, len(rows) // 16)
        val += [rows[i] for i in perm[:k]]
        train += [rows[i] for i in perm[k:]]
    counts = torch.bincount(torch.cat([r["labels"][r["start"]:] for r in train]),  # the labels the loss counts
                            minlength=target.config.vocab_size)
    top = counts.argsort(descending=True)[:a.vocab]
    vocab = sorted(set(top[counts[top] > 0].tolist()) | {tok.eos_token_id})  # the tokens SmolLM2 chose most
    coverage = float(counts[torch.tensor(vocab)].sum() / counts.sum())
    lut = torch.full((target.config.vocab_size,), -100, dtype=torch.long)
    lut[torch.tensor(vocab)] = torch.arange(len(vocab))
    n_tok = {k: sum(len(r["ids"]) for r in v) for k, v in data.items()}
    n_loss = {k: sum(len(r["ids"]) - r["start"] for r in v) for k, v in data.items()}  # positions the loss counts
    print(f"data: {n_tok} tokens ({n_loss} as targets); draft vocabulary {len(vocab)} ({coverage:.1%} of the labels); features in memory "
          f"{sum(r['feats'].numel() * 2 for v in data.values() for r in v) / 2**20:.0f} MB")
    draft = eagle.init_from_target(target, vocab)
    before = evaluate(draft, val, lut, a.unroll)
    params = [p for p in draft.parameters() if p.requires_grad]
    partial = cache_dir() / "cast" / "eagle_partial.safetensors"  # overwritten at every log: a crash loses little

    def loss_fn(step):
        idx = torch.randint(len(train), (a.batch,), generator=g).tolist()
        feats, ids, lab, valid = collate([train[i] for i in idx], lut)
        loss, _ = eagle.loss_on(draft, feats, ids, lab, steps=a.unroll, valid=valid)
        return loss

    hist = training.fit(params, loss_fn, None, lr=a.lr, optimizer_kwargs={"weight_decay": 0.0},
                        schedule="polynomial", schedule_kwargs={"lr_end": 0.05 * a.lr, "power": 1.0}, clip=0.5,
                        max_seconds=a.minutes * 60, model=draft, log_every=100,
                        eval_fn=lambda m: evaluate(draft, val[::4], lut, a.unroll), desc="training",
                        on_log=lambda row: eagle.save(draft, partial, {"step": row["step"], "partial": True}))
    draft.eval()
    after = evaluate(draft, val, lut, a.unroll)
    by_source = {}
    n_val = 0
    for name, rows in data.items():
        k = max(4, len(rows) // 16)
        by_source[name] = evaluate(draft, val[n_val:n_val + k], lut, a.unroll)
        n_val += k
    report = {"tokens": n_tok, "loss_tokens": n_loss, "train_rows": len(train), "val_rows": len(val), "draft_vocab": len(vocab),
              "vocab_coverage": round(coverage, 4), "parameters": draft.draft_params, "unroll": a.unroll, "steps": hist.steps,
              "train_seconds": round(hist.wall_s), "generate_seconds": round(gen_s),
              "feature_seconds": round(feat_s), "total_seconds": round(time.perf_counter() - t_all),
              "val_before": before, "val_after": after, "val_by_source": by_source,
              "val_top1_agreement": after["agree1"],
              "final_loss": round(sum(hist.losses[-50:]) / max(1, len(hist.losses[-50:])), 4),
              "log": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in hist.log],
              "threads": a.threads, "loadavg": os.getloadavg(),
              "command": "python scripts/train_eagle.py " + " ".join(sys.argv[1:])}
    out = eagle.save(draft, a.out, {k: report[k] for k in ("tokens", "steps", "train_seconds", "val_top1_agreement",
                                                            "command")})
    report["checkpoint_mb"] = round(out.stat().st_size / 2**20, 2)
    (out.parent / (out.stem + "_report.json")).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "log"}))


if __name__ == "__main__":
    main()
