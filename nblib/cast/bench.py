"""Side-by-side measurements for notebook 07 and benchmarks/cast.py: plain greedy, assisted generation, chain, tree, CAST."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from . import draft as draft_mod
from .policy import CastPolicy, cached_profile, device_name
from .tree import FixedTree, chain, generate, plain_greedy

DATA = Path(__file__).resolve().parents[2] / "data" / "cast"


def load_pair(device=None):
    """SmolLM2-135M-Instruct (target), its tokenizer, and the shipped trained draft (nblib.cast.draft.Draft)."""
    from .. import zoo

    target, tok = zoo.load_causal_lm("smollm2", device=device)
    return target, tok, draft_mod.load(draft_mod.default_path(), target)


def eval_prompts(n: int, sources=("mt-bench", "humaneval")) -> list[dict]:
    """n held-out prompts, alternating between the sources (MT-Bench questions, HumanEval functions)."""
    rows = [json.loads(line) for line in open(DATA / "eval_prompts.jsonl")]
    by = {s: [r for r in rows if r["source"] == s] for s in sources}
    out = []
    for i in range(n):
        pool = by[sources[i % len(sources)]]
        out.append(pool[(i // len(sources)) % len(pool)])
    return out


def chat_ids(tok, prompt: str) -> list[int]:
    """Token ids of one user turn under the chat template, ready for the assistant's reply."""
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"]


def _batches(items: list, b: int):
    for i in range(0, len(items), b):
        yield items[i:i + b]


def run(name: str, target, draft, prompts: list[list[int]], batch: int, max_new: int, policy=None,
        eos: int | None = None) -> dict:
    """Decode every prompt in batches of `batch` with one method; tokens/s, mean tokens per target call, outputs."""
    outs, emitted, secs, acc, calls, dsec, vsec, row_calls = [], 0, 0.0, [], 0, 0.0, 0.0, 0
    for chunk in _batches(prompts, batch):
        if policy is None:
            r = plain_greedy(target, chunk, max_new, eos)
        else:
            r = generate(target, draft, chunk, max_new, policy, eos)
        outs += r.sequences
        emitted += r.emitted
        secs += r.seconds
        calls += r.steps + 1  # + the prefill, which also emits a token
        acc += r.accepted
        row_calls += r.row_calls
        dsec += r.draft_seconds
        vsec += r.verify_seconds
    return {"method": name, "batch": batch, "tokens": emitted, "seconds": secs, "tokens_per_s": emitted / secs,
            "accepted_per_call": emitted / max(1, row_calls), "target_calls": calls,
            "draft_share": dsec / secs if policy is not None else 0.0, "outputs": outs}


def run_assisted(target, draft, prompts: list[list[int]], batch: int, max_new: int, eos: int | None) -> dict:
    """transformers' assisted generation with the same draft (batch 1 only: it refuses larger batches)."""
    row = {"method": "HF assisted", "batch": batch}
    if batch != 1:
        return {**row, "note": "transformers' assisted generation supports batch size 1 only"}
    calls = [0]
    h = target.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    outs, emitted, secs = [], 0, 0.0
    try:
        with torch.no_grad():
            for p in prompts:
                ids = torch.tensor([p], device=target.device)
                t0 = time.perf_counter()
                g = target.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                                    do_sample=False, assistant_model=draft.model, eos_token_id=eos, pad_token_id=eos)
                secs += time.perf_counter() - t0
                new = g[0, len(p):].tolist()
                if eos is not None and eos in new:
                    new = new[:new.index(eos) + 1]
                outs.append(new)
                emitted += len(new)
    except Exception as e:  # noqa: BLE001 - report why the peer could not run, do not hide it
        return {**row, "note": f"could not run: {type(e).__name__}: {e}"[:200]}
    finally:
        h.remove()
    return {**row, "tokens": emitted, "seconds": secs, "tokens_per_s": emitted / secs,
            "accepted_per_call": emitted / max(1, calls[0]), "target_calls": calls[0], "draft_share": float("nan"),
            "outputs": outs}


def profiles(target, draft, batches, quick: bool = False) -> dict:
    """Latency profiles (cached per device and batch size) on a grid sized for the run mode."""
    kw = dict(contexts=(160,), target_n=(1, 4, 8, 16, 32), draft_n=(1, 4, 8), repeats=2) if quick \
        else dict(contexts=(64, 128, 256, 384), target_n=(1, 2, 4, 8, 12, 16, 24, 32, 48, 64), draft_n=(1, 2, 4, 8, 16),
                  repeats=3)
    return {b: cached_profile(target, draft, b, **kw) for b in batches}


def methods(profs: dict, chain_depth: int = 4, tree=(5, 8, 32)) -> dict:
    """The speculative methods compared: a fixed chain, an EAGLE-2-style fixed-budget tree, and CAST."""
    return {"chain": chain(chain_depth), "EAGLE-2 tree": FixedTree(*tree),
            "CAST": CastPolicy(profs)}


def compare(target, draft, tok, prompts: list[list[int]], batches=(1, 4), max_new: int = 64, quick: bool = False,
            progress: bool = True) -> tuple[list[dict], dict]:
    """Every method at every batch size on the same prompts; rows (with outputs) and the load average around it."""
    from .. import progress as bar

    eos = tok.eos_token_id
    profs = profiles(target, draft, batches, quick)
    load0 = os.getloadavg()
    rows = []
    jobs = [(b, m) for b in batches for m in ["plain greedy", "HF assisted", "chain", "EAGLE-2 tree", "CAST"]]
    meth = methods(profs)
    for b, m in bar(jobs, desc="methods", enabled=progress):
        if m == "plain greedy":
            rows.append(run(m, target, draft, prompts, b, max_new, None, eos))
        elif m == "HF assisted":
            rows.append(run_assisted(target, draft, prompts, b, max_new, eos))
        else:
            rows.append(run(m, target, draft, prompts, b, max_new, meth[m], eos))
    plain = {r["batch"]: r for r in rows if r["method"] == "plain greedy"}
    for r in rows:
        if "outputs" in r:
            r["lossless"] = r["outputs"] == plain[r["batch"]]["outputs"]
            r["speedup"] = r["tokens_per_s"] / plain[r["batch"]]["tokens_per_s"]
    return rows, {"loadavg_before": load0, "loadavg_after": os.getloadavg(), "threads": torch.get_num_threads(),
                  "device": device_name(next(target.parameters()).device)}


def table(rows: list[dict]):
    """The comparison as a DataFrame (no outputs column)."""
    import pandas as pd

    cols = ["method", "batch", "tokens_per_s", "accepted_per_call", "target_calls", "speedup", "lossless",
            "draft_share", "note"]
    df = pd.DataFrame([{k: r.get(k) for k in cols} for r in rows])
    return df.dropna(axis=1, how="all")


def sweep(target, draft, prompts: list[list[int]], depths, top_ks, budgets, batches, max_new: int, eos=None,
          progress: bool = True) -> list[dict]:
    """Tokens/s and accepted length of fixed trees over a (depth, top-k, budget, batch) grid, plus plain greedy."""
    from .. import progress as bar

    rows = []
    jobs = [(b, d, k, m) for b in batches for d in depths for k in top_ks for m in budgets]
    for b in batches:
        r = run("plain greedy", target, draft, prompts, b, max_new, None, eos)
        rows.append({"batch": b, "depth": 0, "top_k": 0, "budget": 0, "tokens_per_s": r["tokens_per_s"],
                     "accepted": 1.0})
    for b, d, k, m in bar(jobs, desc="tree sweep", enabled=progress):
        r = run("tree", target, draft, prompts, b, max_new, FixedTree(d, k, m), eos)
        rows.append({"batch": b, "depth": d, "top_k": k, "budget": m, "tokens_per_s": r["tokens_per_s"],
                     "accepted": r["accepted_per_call"]})
    return rows


def draft_signature(draft) -> dict:
    """What identifies a draft's weights in a cache key: its shape, vocabulary size and a checksum of its weights."""
    model = draft.model if isinstance(draft, draft_mod.Draft) else draft
    own = [p for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n]
    with torch.no_grad():
        checksum = float(sum(p.double().sum() + (p.double() ** 2).sum() for p in own))
    vocab = getattr(draft, "vocab", None)
    return {"layers": model.config.num_hidden_layers, "params": sum(p.numel() for p in own),
            "vocab": None if vocab is None else len(vocab), "checksum": round(checksum, 6)}


def cached_sweep(target, draft, prompts: list[list[int]], depths, top_ks, budgets, batches, max_new: int,
                 eos=None, key: dict | None = None) -> list[dict]:
    """`sweep`, cached per grid, prompts, device and draft, and keyed by the source of the decoding code."""
    from ..cache import cached
    from . import tree

    config = {"prompts": prompts, "depths": list(depths), "top_ks": list(top_ks), "budgets": list(budgets),
              "batches": list(batches), "max_new": max_new, "eos": eos,
              "device": device_name(next(target.parameters()).device), "draft": draft_signature(draft),
              **(key or {})}
    return cached("cast_sweep", config, lambda: sweep(target, draft, prompts, depths, top_ks, budgets, batches,
                                                      max_new, eos), code=(sweep, run, tree), verbose=False)

