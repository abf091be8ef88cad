"""Side-by-side measurements for notebook 07 and benchmarks/cast.py.

transformers' `generate` greedy (the baseline), its assisted generation and prompt-lookup decoding, this package's
plain loop, and chain / EAGLE-2 tree / CAST with the feature-level and the token-level draft.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from . import draft as draft_mod
from . import kernel
from ..cache import weights_fingerprint
from .policy import CastPolicy, cached_profile, device_name, weights_key
from .tree import FixedTree, chain, generate, greedy_reference, is_feature_draft, plain_greedy, unpack_draft

DATA = Path(__file__).resolve().parents[2] / "data" / "cast"


def load_pair(device=None):
    """SmolLM2-135M-Instruct (target), its tokenizer, and the shipped token-level draft (nblib.cast.draft.Draft)."""
    from .. import zoo

    target, tok = zoo.load_causal_lm("smollm2", device=device)
    return target, tok, draft_mod.load(draft_mod.default_path(), target)


def load_drafts(target) -> dict:
    """Both shipped drafts for SmolLM2: {"feature": the EAGLE-style FeatureDraft, "token": the token-level Draft}."""
    from . import eagle

    return {"feature": eagle.load(eagle.default_path(), target), "token": draft_mod.load(draft_mod.default_path(), target)}


def eval_prompts(n: int, sources=("mt-bench", "humaneval")) -> list[dict]:
    """n held-out prompts, alternating between the sources (MT-Bench questions, HumanEval functions)."""
    rows = [json.loads(line) for line in open(DATA / "eval_prompts.jsonl")]
    by = {s: [r for r in rows if r["source"] == s] for s in sources}
    out = []
    for i in range(n):
        pool = by[sources[i % len(sources)]]
        out.append(pool[(i // len(sources)) % len(pool)])
    return out


def prompts_from(path, n: int) -> list[dict]:
    """The first n prompts of a JSON-lines file whose every line has a "prompt" string (e.g. data/cast/chat_prompts.jsonl)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no prompt file at {path}: pass a JSON-lines file with one {{\"prompt\": ...}} per line")
    rows = []
    for i, line in enumerate(path.open(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {i}: not JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise ValueError(f'{path}, line {i}: each line needs a non-empty "prompt" string')
        rows.append({"source": path.stem, **row})
    if not rows:
        raise ValueError(f"{path} holds no prompts")
    return rows[:n]


def chat_ids(tok, prompt: str) -> list[int]:
    """Token ids of one user turn under the chat template, ready for the assistant's reply."""
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"]


def greedy_replies(model, tok, prompts: list[str], new_tokens: int, batch: int) -> list[tuple[list[int], int]]:
    """The model's batched greedy replies under the chat template: (prompt + reply ids, prompt length) per prompt.

    Shortest prompts first (similar lengths batch with less padding); the reply keeps its eos. The training data
    of both drafts (scripts/train_draft.py, scripts/train_eagle.py).
    """
    from tqdm.auto import tqdm

    out = []
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for s in tqdm(range(0, len(order), batch), desc="greedy continuations"):
        ids = [chat_ids(tok, prompts[i]) for i in order[s:s + batch]]
        width = max(map(len, ids))
        inp = torch.tensor([[tok.pad_token_id] * (width - len(x)) + x for x in ids])  # (B, T) left-padded
        att = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        with torch.no_grad():
            g = model.generate(input_ids=inp, attention_mask=att, max_new_tokens=new_tokens, do_sample=False,
                               pad_token_id=tok.pad_token_id)
        for x, row in zip(ids, g[:, width:].tolist(), strict=True):
            if tok.eos_token_id in row:
                row = row[:row.index(tok.eos_token_id) + 1]
            out.append((x + row, len(x)))
    return out


def _batches(items: list, b: int):
    for i in range(0, len(items), b):
        yield items[i:i + b]


def run(name: str, target, draft, prompts: list[list[int]], batch: int, max_new: int, policy=None,
        eos: int | None = None, kernels: bool = True) -> dict:
    """Decode every prompt in batches of `batch` with one method; tokens/s, mean tokens per target call, outputs.

    kernels: the skinny verify kernel (`nblib.cast.kernel`) for this package's loops; False: torch's matmul.
    """
    outs, emitted, secs, acc, calls, dsec, vsec, row_calls = [], 0, 0.0, [], 0, 0.0, 0.0, 0
    shapes: list[tuple[int, int, int]] = []
    for chunk in _batches(prompts, batch):
        if policy is None:
            r = plain_greedy(target, chunk, max_new, eos, kernels=kernels)
        else:
            r = generate(target, draft, chunk, max_new, policy, eos, kernels=kernels)
        outs += r.sequences
        emitted += r.emitted
        secs += r.seconds
        calls += r.steps + 1  # + the prefill, which also emits a token
        acc += r.accepted
        row_calls += r.row_calls
        dsec += r.draft_seconds
        vsec += r.verify_seconds
        shapes += r.shapes
    out = {"method": name, "batch": batch, "tokens": emitted, "seconds": secs, "tokens_per_s": emitted / secs,
           "accepted_per_call": emitted / max(1, row_calls), "target_calls": calls,
           "draft_share": dsec / secs if policy is not None else 0.0, "outputs": outs}
    if policy is not None:
        out["choice"] = tree_choice(shapes)
    return out


def tree_choice(shapes: list[tuple[int, int, int]]) -> dict:
    """What a policy chose over its steps (shapes: (levels, max width, verified) per step): the share of steps it
    drafted nothing, and the mean levels and verified nodes of the steps it drafted."""
    drafted = [s for s in shapes if s[2] > 0]
    n = max(1, len(shapes))
    return {"steps": len(shapes), "no_draft_share": (len(shapes) - len(drafted)) / n,
            "levels_mean": sum(s[0] for s in drafted) / max(1, len(drafted)),
            "width_mean": sum(s[1] for s in drafted) / max(1, len(drafted)),
            "verified_mean": sum(s[2] for s in drafted) / max(1, len(drafted))}


def run_hf(name: str, target, prompts: list[list[int]], batch: int, max_new: int, eos: int | None,
           **generate_kwargs) -> dict:
    """transformers' own `generate` (greedy) over the prompts in batches (left padding); extra kwargs pick a peer.

    `assistant_model=` is assisted generation, `prompt_lookup_num_tokens=` prompt-lookup decoding. A peer that
    refuses the batch size gives a row with a note instead of numbers.
    """
    from transformers.utils import logging as hf_logging

    row = {"method": name, "batch": batch}
    calls = [0]
    h = target.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    outs, emitted, secs = [], 0, 0.0
    pad = eos if eos is not None else 0
    verbosity = hf_logging.get_verbosity()
    # assisted generation calls the assistant's generate with a config and arguments, which transformers itself
    # reports as deprecated on every call: a library-internal notice, silenced here (errors still show)
    hf_logging.set_verbosity_error()
    try:
        with torch.no_grad():
            for chunk in _batches(prompts, batch):
                width = max(map(len, chunk))
                ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=target.device)
                att = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=target.device)
                t0 = time.perf_counter()
                g = target.generate(input_ids=ids, attention_mask=att, max_new_tokens=max_new, do_sample=False,
                                    eos_token_id=eos, pad_token_id=pad, **generate_kwargs)
                secs += time.perf_counter() - t0
                for row_ids in g[:, width:].tolist():
                    if eos is not None and eos in row_ids:
                        row_ids = row_ids[:row_ids.index(eos) + 1]
                    outs.append(row_ids)
                    emitted += len(row_ids)
    except Exception as e:  # noqa: BLE001 - report why the peer could not run, do not hide it
        return {**row, "note": f"could not run: {type(e).__name__}: {e}"[:160]}
    finally:
        h.remove()
        hf_logging.set_verbosity(verbosity)
    n_rows = len(prompts)
    return {**row, "tokens": emitted, "seconds": secs, "tokens_per_s": emitted / secs,
            "accepted_per_call": emitted / max(1, calls[0] * min(batch, n_rows)) if batch == 1 else float("nan"),
            "target_calls": calls[0], "draft_share": float("nan"), "outputs": outs}


def run_assisted(target, draft, prompts: list[list[int]], batch: int, max_new: int, eos: int | None) -> dict:
    """transformers' assisted generation with the token-level draft as `assistant_model` (it needs a causal LM)."""
    if batch != 1:
        return {"method": "HF assisted", "batch": batch,
                "note": "transformers' assisted generation supports batch size 1 only"}
    return run_hf("HF assisted", target, prompts, batch, max_new, eos, assistant_model=draft.model)


def run_prompt_lookup(target, prompts: list[list[int]], batch: int, max_new: int, eos: int | None,
                      n: int = 10) -> dict:
    """transformers' prompt-lookup decoding: drafts by copying the continuation of an n-gram seen in the prompt."""
    if batch != 1:
        return {"method": "HF prompt lookup", "batch": batch,
                "note": "transformers' prompt-lookup decoding supports batch size 1 only"}
    return run_hf("HF prompt lookup", target, prompts, batch, max_new, eos, prompt_lookup_num_tokens=n)


def profiles(target, draft, batches, quick: bool = False) -> dict:
    """Latency profiles (cached per device and batch size) on a grid sized for the run mode."""
    kw = dict(contexts=(160,), target_n=(1, 2, 4, 8, 16, 32), draft_n=(1, 4, 8), repeats=3) if quick \
        else dict(contexts=(128, 256), target_n=(1, 2, 4, 8, 12, 16, 24, 32, 48), draft_n=(1, 2, 4, 8, 16), repeats=5)
    return {b: cached_profile(target, draft, b, **kw) for b in batches}


def methods(profs: dict, chain_depth: int = 4, tree=(5, 8, 32)) -> dict:
    """The speculative methods compared: a fixed chain, an EAGLE-2-style fixed-budget tree, and CAST."""
    return {"chain": chain(chain_depth), "EAGLE-2 tree": FixedTree(*tree),
            "CAST": CastPolicy(profs)}


BASELINE = "HF generate greedy"
PLAIN = "nblib plain greedy"              # this package's loop, lean layers + the skinny kernel: speculation's own baseline
PLAIN_TORCH = "nblib plain (torch matmul)"  # the same loop with torch's matmul: what the kernel alone buys


def compare(target, drafts: dict, tok, prompts: list[list[int]], batches=(1, 4), max_new: int = 64,
            quick: bool = False, progress: bool = True) -> tuple[list[dict], dict]:
    """Every method at every batch size on the same prompts; rows (with outputs) and the load average around it.

    drafts: {"feature": FeatureDraft, "token": Draft} (either may be missing). Speedups divide by transformers'
    `generate` greedy at the same batch size; losslessness compares with `generate` one prompt at a time.
    """
    from .. import progress as bar

    if not isinstance(drafts, dict):  # one draft given: the token-level comparison only
        drafts = {"token": drafts}
    eos = tok.eos_token_id
    profs = {k: profiles(target, d, batches, quick) for k, d in drafts.items()}
    load0 = os.getloadavg()
    jobs = []
    for b in batches:
        jobs += [(b, BASELINE, None), (b, PLAIN_TORCH, None), (b, PLAIN, None)]
        if "token" in drafts:
            jobs.append((b, "HF assisted", "token"))
        jobs.append((b, "HF prompt lookup", None))
        for kind in ("feature", "token"):
            if kind in drafts:
                jobs += [(b, m, kind) for m in ("chain", "EAGLE-2 tree", "CAST")]
    rows = []
    for b, m, kind in bar(jobs, desc="methods", enabled=progress):
        if m == BASELINE:
            r = run_hf(BASELINE, target, prompts, b, max_new, eos)
        elif m in (PLAIN, PLAIN_TORCH):
            r = run(m, target, None, prompts, b, max_new, None, eos, kernels=m == PLAIN)
        elif m == "HF assisted":
            r = run_assisted(target, drafts["token"], prompts, b, max_new, eos)
        elif m == "HF prompt lookup":
            r = run_prompt_lookup(target, prompts, b, max_new, eos)
        else:
            r = run(m, target, drafts[kind], prompts, b, max_new, methods(profs[kind])[m], eos)
        r["draft"] = {"feature": "feature (EAGLE)", "token": "token"}.get(kind, "–")
        rows.append(r)
    reference = greedy_reference(target, prompts, max_new, eos)
    base = {r["batch"]: r for r in rows if r["method"] == BASELINE}
    for r in rows:  # tokens per row per target call of the baseline: 1 by construction
        if r["method"] == BASELINE and "outputs" in r:
            r["accepted_per_call"] = 1.0
    for r in rows:
        if "outputs" in r:
            r["lossless"] = r["outputs"] == reference
            r["speedup"] = r["tokens_per_s"] / base[r["batch"]]["tokens_per_s"]
    plain = {r["batch"]: r for r in rows if r["method"] == PLAIN and "tokens_per_s" in r}
    for r in rows:  # speculation's own gain: over the same loop with the same kernels, no draft
        if "tokens_per_s" in r and r["batch"] in plain:
            r["over_plain"] = r["tokens_per_s"] / plain[r["batch"]]["tokens_per_s"]
    feat = profs.get("feature") or next(iter(profs.values()), {})
    over = {str(b): {**p.overhead, "kernel_rows": p.kernel_rows, "kernel": p.meta.get("kernel")} for b, p in feat.items()}
    return rows, {"loadavg_before": load0, "loadavg_after": os.getloadavg(), "threads": torch.get_num_threads(),
                  "kernel": kernel.status(), "overheads": over,
                  "device": device_name(next(target.parameters()).device), "reference": reference}


def speedup(rows: list[dict], method: str, batch: int, draft: str | None = None,
            key: str = "speedup") -> float | None:
    """The measured speedup over `generate` greedy of one row (None if it did not run); key="over_plain": over
    this package's plain loop."""
    for r in rows:
        if r["method"] == method and r["batch"] == batch and (draft is None or r.get("draft") == draft):
            return r.get(key)
    return None


def draft_agreement(target, draft, prompts: list[list[int]], continuations: list[list[int]], steps: int = 3) -> dict:
    """Top-1 agreement of a draft with the target's greedy token on the target's own continuations.

    Feature draft: "agree1" reads the target's real feature (a tree's first level); "agree2", "agree3" read the
    draft's own predicted features (deeper levels). Token draft: "agree1" only (it reads tokens).
    """
    from . import eagle

    model, vocab = unpack_draft(draft)
    lut = torch.full((target.config.vocab_size,), -100, dtype=torch.long)
    lut[vocab.cpu()] = torch.arange(len(vocab))
    seqs = [p + c for p, c in zip(prompts, continuations, strict=True)]
    sums, n = {}, 0
    with torch.no_grad():
        for p, s in zip(prompts, seqs, strict=True):
            ids = torch.tensor([s], device=target.device)
            feats = target.model(input_ids=ids).last_hidden_state  # (1, T, d)
            greedy = target.lm_head(feats).argmax(-1)  # (1, T)
            valid = torch.zeros_like(ids, dtype=torch.bool)
            valid[0, len(p) - 1:] = True  # positions whose next token the target generated
            lab = lut.to(ids.device)[greedy]
            if is_feature_draft(model):
                _, st = eagle.loss_on(model, feats, ids, lab, steps=steps, valid=valid)
                st = {k: v for k, v in st.items() if k.startswith("agree")}
            else:
                h = model.model(input_ids=ids).last_hidden_state
                top = (h @ model.get_output_embeddings().weight[vocab].T).argmax(-1)
                keep = valid & (lab >= 0)
                st = {"agree1": float((top[keep] == lab[keep]).float().mean())}
            w = int(valid.sum())
            for k, v in st.items():
                sums[k] = sums.get(k, 0.0) + v * w
            n += w
    return {k: round(v / n, 4) for k, v in sums.items()}


def verify_cost(target, ns=(1, 2, 4, 8, 16, 32, 64), context: int = 160, batch: int = 1, repeats: int = 5) -> list[dict]:
    """Cost of one target call on n tree tokens relative to one decode step (n = 1), measured and by FLOPs.

    Three measured paths, each relative to its own n = 1: the lean one `verify` uses (decoder layers called
    directly, the skinny kernel: "lean"), the same with torch's matmul ("torch") and transformers' model forward
    (mask building, output capture, the LM head on every token: "hf"). FLOPs from torch's flop counter.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from ..cost import time_interleaved
    from .tree import KV, head, lm_hidden, prefill

    dev = next(target.parameters()).device
    g = torch.Generator().manual_seed(0)
    V = target.config.vocab_size
    kv = KV(batch, dev)
    with torch.no_grad():
        prefill(target, kv, torch.randint(0, V, (batch, context), generator=g).tolist())
    L = kv.length
    out = []
    for n in ns:
        tok = torch.randint(0, V, (batch, n), generator=g).to(dev)
        ar = torch.arange(n, device=dev)
        anc = (ar[:, None] >= ar[None, :]).expand(batch, n, n)
        dep = ar[None, :].expand(batch, n)
        ok = torch.ones(batch, n, dtype=torch.bool, device=dev)
        mask = torch.zeros(batch, 1, n, L + n, device=dev)
        mask[:, :, :, L:].masked_fill_(~anc[:, None], -1e9)

        def torch_mm(tok=tok, anc=anc, dep=dep, ok=ok):
            head(target, lm_hidden(target, kv, tok, anc, dep, ok))
            kv.truncate(L)

        def lean(tok=tok, anc=anc, dep=dep, ok=ok):
            with kernel.fast_linears(target):
                head(target, lm_hidden(target, kv, tok, anc, dep, ok))
            kv.truncate(L)

        def hf(tok=tok, mask=mask, dep=dep):
            target(input_ids=tok, attention_mask=mask, position_ids=kv.n_pos[:, None] + dep, cache=kv.cache,
                   use_cache=True)
            kv.truncate(L)

        with torch.no_grad():
            with FlopCounterMode(display=False) as fc:
                torch_mm()
            t = time_interleaved({"lean": lean, "torch": torch_mm, "hf": hf}, warmup=1, repeats=repeats)
        out.append({"n": n, "flops": fc.get_total_flops(), "lean_s": t["lean"].median_ms / 1e3,
                    "torch_s": t["torch"].median_ms / 1e3, "hf_s": t["hf"].median_ms / 1e3})
    one = out[0]
    for r in out:
        for k in ("lean", "torch", "hf"):
            r[f"{k}_rel"] = r[f"{k}_s"] / one[f"{k}_s"]
        r["flops_rel"] = r["flops"] / one["flops"]
    return out


def paired_rounds(target, draft, prompts: list[list[int]], batches, max_new: int, profs: dict, eos: int | None,
                  rounds: int = 3, progress: bool = True) -> dict:
    """CAST (a fresh policy each round, so each pays its own warm-up) against the plain loop in `rounds` paired
    rounds per batch size, the order alternating (plain first, then CAST first, ...) so load drift hits both alike.

    Returns {batch: {"over_plain": per-round ratios, "median", "lo", "hi", "plain_tok_s", "cast_tok_s", "lossless"
    (every CAST output equal to the plain loop's)}}: one run per method is a single draw of a noisy machine.
    """
    from statistics import median

    from .. import progress as bar

    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    out = {}
    jobs = [(b, i) for b in batches for i in range(rounds)]
    got: dict[int, list] = {b: [] for b in batches}
    for b, i in bar(jobs, desc="paired rounds", enabled=progress):
        pair = {}
        for which in (("plain", "cast") if i % 2 == 0 else ("cast", "plain")):
            pair[which] = (run(PLAIN, target, None, prompts, b, max_new, None, eos) if which == "plain" else
                           run("CAST", target, draft, prompts, b, max_new, methods(profs)["CAST"], eos))
        got[b].append(pair)
    for b, pairs in got.items():
        ratios = [p["cast"]["tokens_per_s"] / p["plain"]["tokens_per_s"] for p in pairs]
        out[b] = {"over_plain": [round(r, 4) for r in ratios], "median": round(median(ratios), 4),
                  "lo": round(min(ratios), 4), "hi": round(max(ratios), 4),
                  "plain_tok_s": [round(p["plain"]["tokens_per_s"], 3) for p in pairs],
                  "cast_tok_s": [round(p["cast"]["tokens_per_s"], 3) for p in pairs],
                  "lossless": all(p["cast"]["outputs"] == p["plain"]["outputs"] for p in pairs)}
    return out


SWEEP_GRID = {"depths": (2, 3, 4, 6), "top_ks": (1, 2, 4), "budgets": (4, 8, 16), "batches": (1, 4)}
SWEEP_GRID_QUICK = {"depths": (2, 4), "top_ks": (1, 4), "budgets": (4, 8), "batches": (1, 2)}
SWEEP_PROMPTS, SWEEP_NEW = 2, 32


def full_benchmark(target, drafts: dict, tok, prompts: list[list[int]], batches=(1, 2, 4), max_new: int = 64,
                   quick: bool = False, sweep: bool = False, progress: bool = True, rounds: int = 0) -> dict:
    """`compare`, both drafts' agreement, the verify-cost curve, (rounds > 0) CAST against the plain loop in paired
    rounds (`paired_rounds`, feature draft) and (optionally) the slider sweep, in one run."""
    import platform

    import transformers

    rows, env = compare(target, drafts, tok, prompts, batches, max_new, quick, progress)
    reference = env.pop("reference")
    overheads = env.pop("overheads", {})
    agreement = {k: draft_agreement(target, d, prompts, reference) for k, d in drafts.items()}
    context = int(sum(map(len, prompts)) / len(prompts)) + max_new // 2
    ns = (1, 2, 4, 8, 16, 32) if quick else (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
    vc = verify_cost(target, ns, context=context, repeats=3 if quick else 7)
    out = {"rows": rows, "env": env, "agreement": agreement, "verify_cost": vc, "verify_context": context,
           "machine": {"device": env["device"], "threads": env["threads"], "python": platform.python_version(),
                       "torch": torch.__version__, "transformers": transformers.__version__,
                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
           "prompts": len(prompts), "max_new": max_new, "quick": quick, "overheads": overheads}
    if rounds and "feature" in drafts:
        profs = profiles(target, drafts["feature"], batches, quick)
        out["paired"] = {str(b): v for b, v in paired_rounds(target, drafts["feature"], prompts, batches, max_new,
                                                             profs, tok.eos_token_id, rounds, progress).items()}
    if sweep:
        g = SWEEP_GRID_QUICK if quick else SWEEP_GRID
        out["sweep"] = cached_sweep(target, drafts["feature"], prompts[:SWEEP_PROMPTS], g["depths"], g["top_ks"],
                                    g["budgets"], g["batches"], SWEEP_NEW, tok.eos_token_id)
        out["sweep_grid"] = {k: list(v) for k, v in g.items()}
    return out


def save_benchmark(result: dict, path: Path | str) -> Path:
    """Write a full_benchmark result as JSON (token outputs dropped: they were checked, not kept)."""
    path = Path(path)
    slim = {**result, "rows": [{k: v for k, v in r.items() if k != "outputs"} for r in result["rows"]]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(slim, indent=1, default=float) + "\n")
    return path


def load_benchmark(path: Path | str | None = None) -> dict:
    """The shipped benchmark of this suite's machine (data/cast/benchmark_cpu.json), or another saved one."""
    path = Path(path) if path is not None else DATA / "benchmark_cpu.json"
    if not path.exists():
        raise FileNotFoundError(f"no saved CAST benchmark at {path}: run `python benchmarks/cast.py --sweep --save {path}`")
    return json.loads(path.read_text())


def headline(result: dict, prompts: int | None = None, max_new: int | None = None) -> dict:
    """The benchmark's JSON line: speedups over `generate` greedy, tokens per call, agreement, losslessness."""
    rows = result["rows"]
    batches = sorted({r["batch"] for r in rows})

    def sp(method, b, draft=None, key="speedup"):
        v = speedup(rows, method, b, draft, key)
        return None if v is None else round(v, 3)

    feat = "feature (EAGLE)"
    out = {"benchmark": "cast",
           "cast_over_generate_b1": sp("CAST", 1, feat), "eagle_tree_over_generate_b1": sp("EAGLE-2 tree", 1, feat),
           "chain_over_generate_b1": sp("chain", 1, feat),
           "prompt_lookup_over_generate_b1": sp("HF prompt lookup", 1),
           "assisted_over_generate_b1": sp("HF assisted", 1),
           "token_draft_cast_over_generate_b1": sp("CAST", 1, "token"),
           "nblib_plain_over_generate_b1": sp(PLAIN, 1),
           "nblib_plain_torch_over_generate_b1": sp(PLAIN_TORCH, 1),
           "cast_over_plain_b1": sp("CAST", 1, feat, key="over_plain"),
           "draft_top1_agreement": result["agreement"].get("feature", {}).get("agree1"),
           "draft_agreement_by_depth": result["agreement"].get("feature"),
           "token_draft_top1_agreement": result["agreement"].get("token", {}).get("agree1"),
           "lossless": all(r.get("lossless", True) for r in rows),
           "lossless_by_method": {f"{r['method']} [{r.get('draft', '-')}] b{r['batch']}": r["lossless"]
                                  for r in rows if "lossless" in r}}
    for b in batches:
        for m, key in (("CAST", "cast"), ("EAGLE-2 tree", "eagle_tree"), ("chain", "chain")):
            out[f"{key}_over_generate_b{b}"] = sp(m, b, feat)
    out["cast_ge_tree_every_batch"] = all((out[f"cast_over_generate_b{b}"] or 0) >= (out[f"eagle_tree_over_generate_b{b}"] or 0)
                                          for b in batches)
    out["tokens_per_call"] = {f"{r['method']} [{r.get('draft', '-')}] b{r['batch']}": round(r["accepted_per_call"], 3)
                              for r in rows if r.get("accepted_per_call") == r.get("accepted_per_call")
                              and "accepted_per_call" in r}
    paired = result.get("paired") or {}
    for b in batches:
        pr = paired.get(str(b))  # the median of paired rounds, where the run has them, else its one run
        out[f"cast_over_plain_b{b}"] = pr["median"] if pr else sp("CAST", b, feat, key="over_plain")
        out[f"plain_over_generate_b{b}"] = sp(PLAIN, b)
    if paired:
        out["cast_over_plain_rounds"] = {b: {k: v[k] for k in ("median", "lo", "hi", "over_plain", "lossless")}
                                         for b, v in paired.items()}
    mins = [out[f"cast_over_plain_b{b}"] for b in batches if out[f"cast_over_plain_b{b}"] is not None]
    out["cast_min_over_plain_any_batch"] = min(mins) if mins else None
    out["strongest_competitor"] = {str(b): strongest_competitor(rows, b) for b in batches}
    out["cast_no_draft_share"] = {str(b): next((round(r["choice"]["no_draft_share"], 3) for r in rows
                                                if r["method"] == "CAST" and r.get("draft") == feat
                                                and r["batch"] == b and "choice" in r), None) for b in batches}
    vc = {r["n"]: r for r in result["verify_cost"]}
    out["verify32_over_decode"] = round(vc[32]["lean_rel"], 3) if 32 in vc else None
    out["verify4_over_decode"] = round(vc[4]["lean_rel"], 3) if 4 in vc else None
    out["verify4_over_decode_torch"] = round(vc[4]["torch_rel"], 3) if 4 in vc and "torch_rel" in vc[4] else None
    out.update(result.get("sampling", {}))  # sampling_speedup_t07 and its policy, when the run measured it
    out["step_overheads_ms"] = {b: {k: round(1e3 * o[k], 2) for k in ("step_s", "level_s", "nodraft_s") if k in o}
                                for b, o in result.get("overheads", {}).items()}
    env = result["env"]
    out["kernel"] = env.get("kernel")
    out.update({"prompts": prompts if prompts is not None else result.get("prompts"),
                "new_tokens": max_new if max_new is not None else result.get("max_new"),
                "threads": env["threads"], "loadavg_before": env["loadavg_before"],
                "loadavg_after": env["loadavg_after"], "device": env["device"]})
    return out


def strongest_competitor(rows: list[dict], batch: int, exclude=("CAST", "feature (EAGLE)")) -> dict | None:
    """The fastest method at one batch size other than CAST with the feature draft (plain loops included): name,
    draft, tokens/s and its ratio to the plain loop."""
    cands = [r for r in rows if r["batch"] == batch and "tokens_per_s" in r
             and (r["method"], r.get("draft")) != tuple(exclude)]
    if not cands:
        return None
    r = max(cands, key=lambda r: r["tokens_per_s"])
    return {"method": r["method"], "draft": r.get("draft", "–"), "tokens_per_s": round(r["tokens_per_s"], 2),
            "over_plain": None if r.get("over_plain") is None else round(r["over_plain"], 3)}


def per_batch(result: dict):
    """One row per batch size: the plain loop, CAST (feature draft) and what it chose, and the strongest competitor.

    "CAST / plain" is the median of the paired rounds where the run has them (lowest and highest round beside it),
    else the ratio of the one run of each."""
    import pandas as pd

    rows = result["rows"]
    out = []
    for b in sorted({r["batch"] for r in rows}):
        def get(method, draft=None, b=b):
            return next((r for r in rows if r["method"] == method and r["batch"] == b
                         and (draft is None or r.get("draft") == draft) and "tokens_per_s" in r), None)
        plain, gen, c = get(PLAIN), get(BASELINE), get("CAST", "feature (EAGLE)")
        best = strongest_competitor(rows, b)
        ch = (c or {}).get("choice", {})
        pr = (result.get("paired") or {}).get(str(b))
        out.append({"batch": b, "generate (tok/s)": gen and gen["tokens_per_s"],
                    "plain loop (tok/s)": plain and plain["tokens_per_s"],
                    "CAST (tok/s)": c and c["tokens_per_s"],
                    "CAST / plain": pr["median"] if pr else c and c.get("over_plain"),
                    "CAST / plain: lowest round": pr and pr["lo"], "CAST / plain: highest round": pr and pr["hi"],
                    "CAST: steps without a draft (%)": 100 * ch["no_draft_share"] if ch else None,
                    "CAST: levels per drafted step": ch.get("levels_mean"),
                    "CAST: nodes verified per drafted step": ch.get("verified_mean"),
                    "strongest other method": best and f"{best['method']} [{best['draft']}]",
                    "its / plain": best and best["over_plain"]})
    return pd.DataFrame(out)


def paper_vs_ours(head: dict):
    """The paper's headline claims beside this suite's measured numbers (from `headline`), as a DataFrame."""
    import pandas as pd

    def x(v):
        return "did not run" if v is None else f"{v:.2f}x"

    def pct(a, b):
        return "did not run" if a is None or b is None else f"{100 * (a / b - 1):+.0f} %"

    bmax = max(int(k.rsplit("_b", 1)[1]) for k in head if k.startswith("cast_over_generate_b"))
    return pd.DataFrame([
        {"claim": "speedup over plain decoding, batch 1", "paper (GPU, 8-70 B targets)": "up to 5.2x",
         "ours (SmolLM2-135M, CPU)": f"CAST {x(head['cast_over_generate_b1'])} of generate greedy"},
        {"claim": "speculation's own gain: CAST over the same loop without a draft, batch 1",
         "paper (GPU, 8-70 B targets)": "-", "ours (SmolLM2-135M, CPU)": x(head.get("cast_over_plain_b1"))},
        {"claim": "CAST over a fixed EAGLE-2 tree, batch 1", "paper (GPU, 8-70 B targets)": "+5 to +20 %",
         "ours (SmolLM2-135M, CPU)": pct(head["cast_over_generate_b1"], head["eagle_tree_over_generate_b1"])},
        {"claim": f"CAST over a fixed EAGLE-2 tree, batch {bmax}", "paper (GPU, 8-70 B targets)":
         "larger at batch 8 (e.g. 2.6x vs 2.0x)",
         "ours (SmolLM2-135M, CPU)": pct(head[f"cast_over_generate_b{bmax}"], head[f"eagle_tree_over_generate_b{bmax}"])},
        {"claim": "peers at batch 1: assisted generation / prompt lookup", "paper (GPU, 8-70 B targets)": "-",
         "ours (SmolLM2-135M, CPU)": f"{x(head['assisted_over_generate_b1'])} / "
                                     f"{x(head['prompt_lookup_over_generate_b1'])}"},
        {"claim": "draft top-1 agreement (feature / token draft)", "paper (GPU, 8-70 B targets)": "-",
         "ours (SmolLM2-135M, CPU)": f"{head['draft_top1_agreement']:.0%} / {head['token_draft_top1_agreement']:.0%}"},
        {"claim": "output identical to greedy decoding", "paper (GPU, 8-70 B targets)": "yes (lossless)",
         "ours (SmolLM2-135M, CPU)": "yes, every method and batch" if head["lossless"] else "NO (see the table)"},
    ])


class _quiet_fd2:
    """Send file descriptor 2 to /dev/null for a block (the profiler's C++ start/stop log lines; Python errors still
    raise normally)."""

    def __enter__(self):
        import sys

        sys.stderr.flush()
        self.saved = os.dup(2)
        self.null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(self.null, 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        os.close(self.null)
        return False


MODEL_OPS = ("aten::mm", "aten::matmul", "aten::addmm", "aten::bmm", "aten::linear",
             "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_efficient_attention",
             "aten::_scaled_dot_product_flash_attention", "aten::scaled_dot_product_attention", kernel.PROFILE_NAME)


def profile_ops(target, draft, prompts: list[list[int]], max_new: int = 32, policy=None, rows: int = 12) -> dict:
    """torch's profiler on one speculative `generate`: ops by self CPU time, and the share that is model compute."""
    import pandas as pd
    from torch.profiler import ProfilerActivity, profile

    policy = policy if policy is not None else FixedTree(5, 8, 32)
    generate(target, draft, prompts, 4, policy)  # warm-up
    with _quiet_fd2(), kernel.profiled(), profile(activities=[ProfilerActivity.CPU]) as prof:  # kineto: fd 2 lines
        generate(target, draft, prompts, max_new, policy)
    ev = [e for e in prof.key_averages()]
    total = sum(e.self_cpu_time_total for e in ev)
    df = pd.DataFrame([{"op": e.key, "self CPU ms": e.self_cpu_time_total / 1e3,
                        "share": e.self_cpu_time_total / total, "calls": e.count} for e in ev])
    df = df.sort_values("self CPU ms", ascending=False).reset_index(drop=True)
    model = float(df[df["op"].isin(MODEL_OPS)]["share"].sum())
    return {"table": df.head(rows).round(3), "model_share": model, "total_ms": total / 1e3}


def table(rows: list[dict]):
    """The comparison as a DataFrame (no outputs column)."""
    import pandas as pd

    cols = ["method", "draft", "batch", "tokens_per_s", "accepted_per_call", "target_calls", "speedup", "over_plain",
            "lossless", "draft_share", "note"]
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
    """What identifies a draft in a cache key: its shape, vocabulary size and the sha256 of its weights."""
    model = draft.model if isinstance(draft, draft_mod.Draft) else draft
    own = [p for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n]
    vocab = getattr(draft, "vocab", None)
    return {"layers": model.config.num_hidden_layers, "params": sum(p.numel() for p in own),
            "vocab": None if vocab is None else len(vocab), "weights": weights_fingerprint(model)}


def cached_sweep(target, draft, prompts: list[list[int]], depths, top_ks, budgets, batches, max_new: int,
                 eos=None, key: dict | None = None) -> list[dict]:
    """`sweep`, cached per grid, prompts, device and draft, and keyed by the source of the decoding code."""
    from ..cache import cached
    from . import tree

    config = {"prompts": prompts, "depths": list(depths), "top_ks": list(top_ks), "budgets": list(budgets),
              "batches": list(batches), "max_new": max_new, "eos": eos,
              "device": device_name(next(target.parameters()).device), "draft": draft_signature(draft),
              **(key or {}), **weights_key(target, draft)}   # weights last: a caller's key cannot replace them
    return cached("cast_sweep", config, lambda: sweep(target, draft, prompts, depths, top_ks, budgets, batches,
                                                      max_new, eos), code=(sweep, run, tree), verbose=False)



def sampling_speed(target, draft, prompts: list[list[int]], temperature: float = 0.7, top_p: float = 1.0,
                   max_new: int = 64, policies: dict | None = None, eos: int | None = None, repeats: int = 3,
                   seed: int = 0) -> dict:
    """Tokens/s at batch 1 of the plain sampled loop and of speculative sampling, interleaved repeats, and their ratio.

    Speculative sampling is lossless in distribution (`tree.verify_sampled`), not token for token, so the outputs
    are not compared here (tests/cast/test_cast_sampling.py checks the distribution). Returns, per method, the
    median tokens/s over repeats with its range, the mean tokens per target call, and `speedup` of each policy over
    the plain loop (median over medians).
    """
    from .sampling import Sampling

    policies = policies if policies is not None else {"chain-4": chain(4), "tree 5x8/32": FixedTree(5, 8, 32)}
    runs: dict[str, list[float]] = {"plain": [], **{k: [] for k in policies}}
    acc: dict[str, list[float]] = {k: [] for k in runs}
    for rep in range(repeats):
        for name in runs:
            toks, secs, calls = 0, 0.0, 0
            for i, p in enumerate(prompts):
                s = Sampling(temperature, top_p, seed + 1000 * rep + i)
                if name == "plain":
                    r = plain_greedy(target, [p], max_new, eos, sampling=s)
                else:
                    r = generate(target, draft, [p], max_new, policies[name], eos, sampling=s)
                toks += r.emitted
                secs += r.seconds
                calls += r.row_calls
            runs[name].append(toks / secs)
            acc[name].append(toks / max(1, calls))
    out = {k: {"tokens_per_s": float(np.median(v)), "range": [float(min(v)), float(max(v))],
               "tokens_per_call": float(np.mean(acc[k]))} for k, v in runs.items()}
    for k in policies:
        out[k]["speedup"] = out[k]["tokens_per_s"] / out["plain"]["tokens_per_s"]
    out["temperature"], out["top_p"], out["repeats"] = temperature, top_p, repeats
    return out
