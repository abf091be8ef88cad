"""Train the draft model of notebook 07 (CAST) on SmolLM2's own greedy continuations.

The draft is a 2-layer Llama with SmolLM2's tokenizer, width and (frozen, tied)
embeddings: layer 0 starts from SmolLM2's first block, layer 1 from its last,
then both are trained to predict the target's greedy next token. Its output is
restricted to the tokens seen in the training targets (a "draft vocabulary", as
in EAGLE-3), which keeps training and drafting cheap; verification by the target
is unchanged, so decoding stays lossless. Only the non-embedding weights and the
vocabulary are saved: data/cast/draft.safetensors + data/cast/draft.json, by default
with the 2-D weight matrices as int8 and one fp16 scale per output row (format
nblib.cast.draft/2, about 7 MB); --fp16 writes every weight fp16 (format /1, about
14 MB), the input of scripts/quantize_draft.py.

    python scripts/train_draft.py            # about 25-40 min on 2 shared CPU cores
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nblib import zoo  # noqa: E402
from nblib.cache import cache_dir  # noqa: E402
from nblib import cast  # noqa: E402
from nblib import training  # noqa: E402


def generate_data(model, tok, prompts: list[str], new_tokens: int, batch: int) -> list[dict]:
    """Batched greedy continuations of the target: [{'ids': prompt+continuation, 'start': len(prompt)}]."""
    tok.padding_side = "left"
    return [{"ids": ids, "start": start} for ids, start in cast.bench.greedy_replies(model, tok, prompts, new_tokens,
                                                                                     batch)]


def held_out_split(rows: list[dict], rng: torch.Generator) -> tuple[list[dict], list[dict]]:
    """(train, val) of the continuation rows: a seeded 1-in-16 (at least 8) held-out set, drawn first from rng."""
    perm = torch.randperm(len(rows), generator=rng).tolist()
    n_val = max(8, len(rows) // 16)
    return [rows[i] for i in perm[n_val:]], [rows[i] for i in perm[:n_val]]


def continuation_rows(target, tok, n_prompts: int, new_tokens: int, gen_batch: int) -> tuple[list[dict], float | None]:
    """The target's greedy continuations of the first n_prompts training prompts (cached), and the seconds spent."""
    data_path = cache_dir() / "cast" / f"train_data_{n_prompts}_{new_tokens}.json"
    if data_path.exists():
        return json.loads(data_path.read_text()), None
    prompts = [json.loads(l)["prompt"] for l in open(ROOT / "data" / "cast" / "train_prompts.jsonl")][:n_prompts]
    t0 = time.perf_counter()
    rows = generate_data(target, tok, prompts, new_tokens, gen_batch)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    data_path.write_text(json.dumps(rows))
    gen_s = time.perf_counter() - t0
    print(f"generated {sum(len(r['ids']) - r['start'] for r in rows)} tokens in {gen_s:.0f} s")
    return rows, gen_s


def stdlib_text_rows(model, tok, n_tokens: int, window: int = 256, batch: int = 8) -> list[dict]:
    """Windows of Python standard-library source text, labelled with the target's greedy next token (teacher forcing)."""
    import sysconfig

    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    ids: list[int] = []
    for f in files:
        ids += tok(f.read_text(errors="ignore"), add_special_tokens=False)["input_ids"]
        if len(ids) >= n_tokens:
            break
    wins = [ids[i:i + window] for i in range(0, min(len(ids), n_tokens) - window + 1, window)]
    rows = []
    for s in tqdm(range(0, len(wins), batch), desc="teacher-forced labels"):
        x = torch.tensor(wins[s:s + batch])
        with torch.no_grad():
            lab = model(input_ids=x).logits.argmax(-1)  # (b, window) target's next-token choice
        rows += [{"ids": w, "start": 1, "labels": l} for w, l in zip(wins[s:s + batch], lab.tolist(), strict=True)]
    return rows


def main() -> None:
    """Generate the data (cached), train the draft, save data/cast/draft.safetensors (+ .json) and a JSON report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-prompts", type=int, default=480)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--gen-batch", type=int, default=16)
    ap.add_argument("--minutes", type=float, default=18.0, help="training wall-time budget")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=8, help="sequences per step")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "cast" / "draft.safetensors")
    ap.add_argument("--tf-tokens", type=int, default=0, help="extra teacher-forced stdlib text tokens")
    ap.add_argument("--init", type=Path, default=None, help="continue from this draft checkpoint")
    ap.add_argument("--fp16", action="store_true",
                    help="save every weight fp16 (format /1, for scripts/quantize_draft.py); default int8 + scales")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    target, tok = zoo.load_causal_lm("smollm2", device="cpu")
    rows, gen_s = continuation_rows(target, tok, a.n_prompts, a.new_tokens, a.gen_batch)
    rng = torch.Generator().manual_seed(0)
    train, val = held_out_split(rows, rng)
    tf_rows = []
    if a.tf_tokens:
        tf_path = cache_dir() / "cast" / f"tf_stdlib_{a.tf_tokens}.json"
        if tf_path.exists():
            tf_rows = json.loads(tf_path.read_text())
        else:
            tf_rows = stdlib_text_rows(target, tok, a.tf_tokens)
            tf_path.write_text(json.dumps(tf_rows))
    vocab = sorted({t for r in train for t in r["ids"][r["start"]:]} | {t for r in tf_rows for t in r["labels"]}
                   | {tok.eos_token_id})
    draft = cast.draft.init_from_target(target, vocab, layers=(0, len(target.model.layers) - 1))
    if a.init is not None:  # continue from an earlier run: its blocks; the vocabulary may grow
        prev = cast.draft.load(a.init, target)
        draft.model.load_state_dict(prev.model.state_dict())
        draft.vocab = torch.tensor(sorted(set(vocab) | set(prev.vocab.tolist())))
    del target
    params = [p for p in draft.model.parameters() if p.requires_grad]

    def loss_fn(step):
        idx = torch.randint(len(train), (a.batch,), generator=rng).tolist()
        use_tf = tf_rows and step % 2 == 1  # alternate: own continuations, teacher-forced text
        batch_rows = [tf_rows[i % len(tf_rows)] for i in idx] if use_tf else [train[i] for i in idx]
        return cast.draft.loss_on(draft, batch_rows)[0]

    # time-boxed: linear decay to 10 % of lr over the wall-time budget (transformers' "polynomial", power 1)
    hist = training.fit(params, loss_fn, None, lr=a.lr, optimizer_kwargs={"weight_decay": 0.0},
                        schedule="polynomial", schedule_kwargs={"lr_end": 0.1 * a.lr, "power": 1.0}, clip=1.0,
                        max_seconds=a.minutes * 60, desc="training")
    steps_done, train_s = hist.steps, hist.wall_s
    with torch.no_grad():
        _, acc = cast.draft.loss_on(draft, val)
    out = cast.draft.save(draft, a.out, quantize=not a.fp16)
    saved = cast.draft.load(out, draft.model)  # the draft as stored (int8 dequantised / fp16), same embeddings
    with torch.no_grad():
        _, acc_saved = cast.draft.loss_on(saved, val)
    report = {"train_tokens": sum(len(r["ids"]) - r["start"] for r in train), "val_sequences": len(val),
              "teacher_forced_tokens": sum(len(r["labels"]) for r in tf_rows), "init": str(a.init) if a.init else None,
              "draft_vocab": len(vocab), "steps": steps_done, "train_seconds": round(train_s),
              "generate_seconds": None if gen_s is None else round(gen_s), "val_top1_agreement": round(acc, 4),
              "val_top1_agreement_saved": round(acc_saved, 4),
              "format": json.loads(out.with_suffix(".json").read_text())["format"],
              "final_loss": round(sum(hist.losses[-50:]) / len(hist.losses[-50:]), 4), "threads": a.threads,
              "loadavg": os.getloadavg(), "checkpoint_mb": round(out.stat().st_size / 2**20, 2)}
    (out.parent / "draft_report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
