"""The task world's models: char tokenizer, Llama models from transformers, checkpoints, generation, traces.

The models are transformers' own `LlamaForCausalLM` (so `generate`, KV caches
and 4D attention masks work), trained by scripts/train_taskworld.py on the
problems of `nblib.tasks` and committed under data/taskworld/<name>/ as
`model.safetensors` + `config.json` (the LlamaConfig) + `train.json` (how it was
trained, how long it took). A sequence is ``<bos> problem \\n solution <eos>``.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from . import tasks as T
from .cost import TransformerShape, transformer_flops

# ----------------------------------------------------------------------------- tokenizer
SPECIALS = ("<pad>", "<bos>", "<eos>")
CHARS = "\n0123456789+-*=#,"
VOCAB = SPECIALS + tuple(CHARS)
PAD, BOS, EOS = 0, 1, 2
NEWLINE = VOCAB.index("\n")
_STOI = {c: i for i, c in enumerate(VOCAB)}

MODELS_DIR = T.DATA_DIR
LADDER = ("tiny", "mid", "large")  # smallest to largest
SPECIALISTS = {"+": "spec-add", "-": "spec-sub", "*": "spec-mul"}  # kind of step -> model name


class UnknownModel(KeyError):
    """A task-model name with no checkpoint; the message lists the ones there are."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class CheckpointMismatch(ValueError):
    """A checkpoint whose weights, config or vocabulary do not fit together."""


def encode(text: str, bos: bool = True) -> list[int]:
    """Token ids of a text (one per character), with <bos> first by default."""
    try:
        ids = [_STOI[c] for c in text]
    except KeyError as e:
        raise T.MalformedProblem(f"character {e.args[0]!r} is not in the task vocabulary {CHARS!r}") from None
    return [BOS] + ids if bos else ids


def decode(ids: Iterable[int]) -> str:
    """Text of token ids, special tokens dropped."""
    return "".join(VOCAB[i] for i in ids if i >= len(SPECIALS))


def prompt_of(problem: T.Problem) -> str:
    """The text a model is given: the problem line and a newline."""
    return problem.text + "\n"


# ----------------------------------------------------------------------------- models
@dataclass(frozen=True)
class Arch:
    """Shape of a task model (a small Llama)."""

    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_len: int = 128

    def config(self):
        """The transformers LlamaConfig for this shape and the char vocabulary."""
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=len(VOCAB), hidden_size=self.d_model, intermediate_size=self.d_ff,
            num_hidden_layers=self.n_layers, num_attention_heads=self.n_heads, num_key_value_heads=self.n_heads,
            max_position_embeddings=self.max_len, tie_word_embeddings=True, rms_norm_eps=1e-5,
            bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, attention_dropout=0.0,
            architectures=["LlamaForCausalLM"],
        )


def build_model(arch: Arch, seed: int = 0):
    """A freshly initialised LlamaForCausalLM of this shape (SDPA attention, fp32)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = arch.config()
    cfg._attn_implementation = "sdpa"
    return LlamaForCausalLM(cfg)


def available_models(root: Path | str = MODELS_DIR) -> list[str]:
    """Names of the task models with a committed checkpoint."""
    root = Path(root)
    return sorted(p.parent.name for p in root.glob("*/model.safetensors")) if root.exists() else []


def model_info(name: str, root: Path | str = MODELS_DIR) -> dict:
    """The training record (train.json) of a committed task model."""
    folder = _folder(name, root)
    return json.loads((folder / "train.json").read_text())


def _folder(name: str, root: Path | str = MODELS_DIR) -> Path:
    folder = Path(root) / str(name)
    if not (folder / "model.safetensors").exists():
        have = available_models(root)
        raise UnknownModel(f"no task model named {name!r} in {Path(root)}; available: {have or 'none'}"
                           + ("" if have else " (rebuild them with: python scripts/train_taskworld.py)"))
    return folder


def save_model(model, folder: Path | str, record: dict) -> None:
    """Write model.safetensors, config.json and train.json into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg.pop("_attn_implementation_autoset", None)
    (folder / "config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")
    (folder / "train.json").write_text(json.dumps({**record, "vocab": "".join(VOCAB[3:])}, indent=1) + "\n")


def load_model(name: str, root: Path | str = MODELS_DIR, device: Any = "cpu"):
    """Load a committed task model by name (e.g. 'tiny', 'spec-mul'), eval mode; clear errors if it does not fit."""
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = _folder(name, root)
    raw = json.loads((folder / "config.json").read_text())
    cfg = LlamaConfig(**{k: v for k, v in raw.items() if k not in {"transformers_version", "model_type"}})
    if cfg.vocab_size != len(VOCAB):
        raise CheckpointMismatch(f"{folder}/config.json has vocab_size {cfg.vocab_size} but the task tokenizer "
                                 f"has {len(VOCAB)} tokens")
    info = json.loads((folder / "train.json").read_text()) if (folder / "train.json").exists() else {}
    if info.get("vocab", "".join(VOCAB[3:])) != "".join(VOCAB[3:]):
        raise CheckpointMismatch(f"{folder} was trained with vocabulary {info['vocab']!r}, not {''.join(VOCAB[3:])!r}")
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg)
    state = load_file(str(folder / "model.safetensors"))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "lm_head.weight"}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))[:3]
        extra = sorted(set(got) - set(expected))[:3]
        wrong = [(k, got[k], expected[k]) for k in expected if k in got and got[k] != expected[k]][:3]
        raise CheckpointMismatch(
            f"{folder}: the weights do not match config.json (hidden_size={cfg.hidden_size}, "
            f"layers={cfg.num_hidden_layers}); missing {missing}, unexpected {extra}, shape (got, want) {wrong}")
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    return model.to(device).eval()


def shape_of(model) -> TransformerShape:
    """The FLOP-relevant shapes of a task model."""
    return TransformerShape.from_config(model.config)


# ----------------------------------------------------------------------------- generation
@dataclass
class Generation:
    """One greedy continuation: its text, token ids, and per-token log-prob / max logit of each chosen token."""

    prompt: str
    text: str
    tokens: list[int]
    logprobs: list[float]  # log p of each generated token (greedy: the max log-prob), nats
    max_logits: list[float]  # the raw max logit at each generated position
    prompt_tokens: int  # incl. <bos>
    flops: int  # analytic FLOPs of this sequence alone (prefill + each decode step, KV cache)


def generation_flops(shape: TransformerShape, prompt_tokens: int, new_tokens: int) -> int:
    """Analytic FLOPs of greedy decoding one sequence with a KV cache (prefill, then one token at a time)."""
    total = transformer_flops(shape, 1, prompt_tokens, 0, logits_positions=1)
    for k in range(1, new_tokens):  # the last generated token is never fed back
        total += transformer_flops(shape, 1, 1, past=prompt_tokens + k - 1, logits_positions=1)
    return total


@torch.no_grad()
def generate(model, prompts: Sequence[str], max_new_tokens: int = 64, stop_at_newline: bool = False,
             batch_size: int = 256, bos: bool = True) -> list[Generation]:
    """Greedy-decode each prompt (batched, left-padded, KV cache) until <eos> (or a newline when asked)."""
    from transformers import DynamicCache

    shape = shape_of(model)
    dev = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    results: dict[int, Generation] = {}
    for b0 in range(0, len(order), batch_size):
        idx = order[b0:b0 + batch_size]
        enc = [encode(prompts[i], bos=bos) for i in idx]
        width = max(len(e) for e in enc)
        x = torch.full((len(enc), width), PAD, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for r, e in enumerate(enc):
            x[r, width - len(e):] = torch.tensor(e)
            mask[r, width - len(e):] = 1
        x, mask = x.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=model.config)
        logits = model(input_ids=x, attention_mask=mask, position_ids=pos, cache=cache,
                       use_cache=True, logits_to_keep=1).logits[:, -1].float()  # (B, V)
        n = len(enc)
        toks = [[] for _ in range(n)]
        lps = [[] for _ in range(n)]
        mls = [[] for _ in range(n)]
        done = torch.zeros(n, dtype=torch.bool, device=dev)
        for step in range(max_new_tokens):
            logp = torch.log_softmax(logits, -1)
            best = logp.argmax(-1)  # (B,)
            lp = logp.gather(1, best[:, None])[:, 0]
            ml = logits.max(-1).values
            b_l, lp_l, ml_l, d_l = best.tolist(), lp.tolist(), ml.tolist(), done.tolist()
            for r in range(n):
                if not d_l[r]:
                    toks[r].append(b_l[r])
                    lps[r].append(lp_l[r])
                    mls[r].append(ml_l[r])
            stop = best == EOS
            if stop_at_newline:
                stop |= best == NEWLINE
            done = done | stop
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            nxt = torch.where(done, torch.full_like(best, PAD), best)
            mask = torch.cat([mask, (~done).long()[:, None]], 1)
            pos = pos[:, -1:] + 1
            logits = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, cache=cache,
                           use_cache=True).logits[:, -1].float()
        for r, i in enumerate(idx):
            results[i] = Generation(prompts[i], decode(toks[r]), toks[r], lps[r], mls[r], len(enc[r]),
                                    generation_flops(shape, len(enc[r]), len(toks[r])))
    return [results[i] for i in range(len(prompts))]


def solve(model, problems: Sequence[T.Problem], batch_size: int = 256, max_new_tokens: int = 80) -> list[Generation]:
    """Greedy solutions of the problems (text after the prompt up to <eos>)."""
    return generate(model, [prompt_of(p) for p in problems], max_new_tokens=max_new_tokens, batch_size=batch_size)


def accuracy(model, problems: Sequence[T.Problem], batch_size: int = 256) -> float:
    """Final-answer accuracy of greedy solutions."""
    gens = solve(model, problems, batch_size)
    return float(np.mean([T.check_answer(p, g.text) for p, g in zip(problems, gens)]))


def step_accuracy(model, problems: Sequence[T.Problem], batch_size: int = 512) -> dict[str, float]:
    """Per kind of step: the share of steps the model writes exactly right given the gold steps before it."""
    ctx, gold, kinds = [], [], []
    for p in problems:
        lines = p.step_lines
        for i in range(p.n_steps):
            ctx.append(prompt_of(p) + "".join(line + "\n" for line in lines[:i]))
            gold.append(lines[i])
            kinds.append(p.kinds[i])
    gens = generate(model, ctx, max_new_tokens=16, stop_at_newline=True, batch_size=batch_size)
    ok = np.array([g.text.strip() == s for g, s in zip(gens, gold)])
    kinds = np.array(kinds)
    return {k: float(ok[kinds == k].mean()) for k in T.OPS if (kinds == k).any()}


# ----------------------------------------------------------------------------- traces
@dataclass
class StepTrace:
    """One written step (or the answer line) of a traced solution."""

    index: int  # 0-based; the answer line has index == number of steps written
    text: str
    kind: str  # '+', '-', '*', or '#' for the answer line, '?' for a line that is not a step
    valid: bool  # locally correct (copies and computes right given the line before)
    gold: bool  # equals the gold line
    logprobs: list[float]  # per character incl. the closing newline / <eos>, nats
    max_logits: list[float]
    confidence: float  # min over the step's tokens of the chosen token's probability
    first_prob: float  # probability of the step's first token (read before the step is written)
    tokens: int
    flops: int  # analytic FLOPs spent decoding this step's tokens


@dataclass
class ProblemTrace:
    """A model's greedy solution of one problem, split into steps."""

    problem: str
    n_steps: int
    answer: int
    text: str
    correct: bool
    steps: list[StepTrace]
    prompt_tokens: int
    new_tokens: int
    flops: int


def split_steps(gen: Generation, problem: T.Problem, shape: TransformerShape) -> list[StepTrace]:
    """Cut a generation into lines and check each; attach its tokens' log-probs and FLOPs."""
    steps, cur, prev = [], [], problem.start
    # the FLOPs of the forward that produced generated token k (k = 0 is the prefill)
    per_tok = [transformer_flops(shape, 1, gen.prompt_tokens, 0, logits_positions=1)] + [
        transformer_flops(shape, 1, 1, past=gen.prompt_tokens + k - 1, logits_positions=1)
        for k in range(1, len(gen.tokens))]
    for k, tok in enumerate(gen.tokens):
        cur.append(k)
        if tok in (NEWLINE, EOS) or k == len(gen.tokens) - 1:
            text = decode(gen.tokens[j] for j in cur).strip()
            i = len(steps)
            m = T._ANSWER_RE.match(text)
            if m:
                kind, valid, gold = "#", int(m.group(1)) == prev, int(m.group(1)) == problem.answer
            elif i < problem.n_steps:
                c = T.check_step(problem, i, text, prev_value=prev)
                kind = text_kind(text)
                valid, gold = c.valid, c.gold
                r = T.step_result(text)
                prev = r if r is not None else prev
            else:
                kind, valid, gold = "?", False, False
            lp = [gen.logprobs[j] for j in cur]
            steps.append(StepTrace(i, text, kind, valid, gold, lp, [gen.max_logits[j] for j in cur],
                                   float(math.exp(min(lp))), float(math.exp(lp[0])), len(cur),
                                   int(sum(per_tok[j] for j in cur))))
            cur = []
    return steps


def text_kind(line: str) -> str:
    """The operator of a step line ('?' when it is not a step)."""
    m = T._STEP_RE.match(line.strip())
    return m.group(3) if m else "?"


def trace_problems(model, problems: Sequence[T.Problem], batch_size: int = 256) -> list[ProblemTrace]:
    """Solve the problems once and return per-problem, per-step traces (text, correctness, log-probs, FLOPs)."""
    shape = shape_of(model)
    gens = solve(model, problems, batch_size)
    out = []
    for p, g in zip(problems, gens):
        out.append(ProblemTrace(p.text, p.n_steps, p.answer, g.text, T.check_answer(p, g.text),
                                split_steps(g, p, shape), g.prompt_tokens, len(g.tokens), g.flops))
    return out


def trace(name: str, split: str = "test", n: int = 500, seed: int = 0, cfg: T.TaskConfig = T.TaskConfig(),
          verbose: bool = True) -> list[ProblemTrace]:
    """Run a committed task model over a split once; cached per (model, checkpoint, split, n, seed, cfg)."""
    from .cache import cached

    folder = _folder(name)
    stamp = (folder / "model.safetensors").stat().st_size, json.loads((folder / "train.json").read_text()).get("sha256")
    config = {"model": name, "checkpoint": list(stamp), "split": split, "n": n, "seed": seed, "cfg": cfg}

    def compute():
        return trace_problems(load_model(name), T.problems(split, n, seed, cfg))

    return cached("taskworld_trace", config, compute, verbose=verbose)


def trace_frame(traces: Sequence[ProblemTrace]):
    """Flatten traces to one row per written step (pandas DataFrame)."""
    import pandas as pd

    rows = []
    for pi, t in enumerate(traces):
        for s in t.steps:
            rows.append({"problem_id": pi, "problem": t.problem, "n_steps": t.n_steps, "step": s.index,
                         "text": s.text, "kind": s.kind, "valid": s.valid, "gold": s.gold,
                         "confidence": s.confidence, "first_prob": s.first_prob, "tokens": s.tokens,
                         "flops": s.flops, "problem_correct": t.correct})
    return pd.DataFrame(rows)


def step_auroc(traces: Sequence[ProblemTrace], include_answer: bool = False) -> float:
    """AUROC of step confidence for valid vs invalid steps (answer lines excluded by default)."""
    from sklearn.metrics import roc_auc_score

    ys, cs = [], []
    for t in traces:
        for s in t.steps:
            if s.kind == "#" and not include_answer:
                continue
            ys.append(int(s.valid))
            cs.append(s.confidence)
    if len(set(ys)) < 2:
        raise ValueError("AUROC needs both correct and wrong steps; all steps had the same verdict")
    return float(roc_auc_score(ys, cs))


# ----------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainSpec:
    """How one task model is trained (stored in its train.json)."""

    name: str
    arch: Arch
    steps: int
    lr: float = 2e-3
    batch: int = 64
    warmup: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    task: T.TaskConfig = field(default_factory=T.TaskConfig)
    focus: str | None = None  # specialists: the kind of step the loss is (mostly) on
    focus_keep: float = 0.1  # share of other-kind step lines that still carry loss


def collate(problems: Sequence[T.Problem], focus: str | None = None, focus_keep: float = 1.0,
            rng: random.Random | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and labels (B, T) with the prompt and padding masked out (-100).

    With `focus` (a kind of step), step lines of other kinds carry loss only with
    probability `focus_keep`: the model is trained mostly on that kind of step.
    """
    rng = rng or random.Random(0)
    seqs, masks = [], []
    for p in problems:
        prompt = encode(prompt_of(p))
        seq, keep = list(prompt), [False] * len(prompt)
        for line, kind in zip(p.step_lines, p.kinds):
            on = focus is None or kind == focus or rng.random() < focus_keep
            ids = encode(line + "\n", bos=False)
            seq += ids
            keep += [on] * len(ids)
        tail = encode(f"{T.ANSWER}{p.answer}", bos=False) + [EOS]
        seq += tail
        keep += [True] * len(tail)
        seqs.append(seq)
        masks.append(keep)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for r, (s, k) in enumerate(zip(seqs, masks)):
        ids[r, :len(s)] = torch.tensor(s)
        labels[r, :len(s)] = torch.where(torch.tensor(k), torch.tensor(s), torch.tensor(-100))
    return ids, labels


def train(spec: TrainSpec, log_every: int = 100, eval_fn=None, verbose: bool = True):
    """Train a task model from scratch on its task mix; return (model, record with losses and wall time)."""
    model = build_model(spec.arch, spec.seed)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=spec.lr, betas=(0.9, 0.98))

    def lr_at(step):
        if step < spec.warmup:
            return spec.lr * (step + 1) / spec.warmup
        frac = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
        return spec.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    stream = T.iter_problems("train", spec.seed, spec.task, distinct=False)
    mask_rng = random.Random(spec.seed)
    losses, log = [], []
    t0 = time.perf_counter()
    for step in range(spec.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        ids, labels = collate([next(stream) for _ in range(spec.batch)], spec.focus, spec.focus_keep, mask_rng)
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == spec.steps:
            row = {"step": step + 1, "loss": float(np.mean(losses[-log_every:])),
                   "wall_s": round(time.perf_counter() - t0, 1)}
            if eval_fn is not None:
                model.eval()
                row.update(eval_fn(model))
                model.train()
            log.append(row)
            if verbose:
                print(f"[{spec.name}] " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                   for k, v in row.items()), flush=True)
    model.eval()
    from .zoo import n_params

    record = {"spec": _plain(spec), "params": n_params(model), "train_wall_s": round(time.perf_counter() - t0, 1),
              "torch_threads": torch.get_num_threads(), "log": log}
    return model, record


def _plain(obj):
    if hasattr(obj, "__dataclass_fields__"):
        return {k: _plain(v) for k, v in asdict(obj).items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- measured targets
def flops_per_token(model, past: int = 32) -> tuple[int, int]:
    """(analytic, measured) FLOPs of generating one token after `past` cached tokens (batch 1)."""
    from transformers import DynamicCache

    from .cost import measure_flops

    ids = torch.full((1, past), NEWLINE, dtype=torch.long)
    ids[0, 0] = BOS
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
    nxt = torch.full((1, 1), NEWLINE, dtype=torch.long)
    _, measured = measure_flops(lambda: model(input_ids=nxt, cache=cache, use_cache=True, logits_to_keep=1))
    analytic = transformer_flops(shape_of(model), 1, 1, past=past, logits_positions=1)
    return analytic, measured


def accuracy_by_steps(traces: Sequence[ProblemTrace]) -> dict[int, float]:
    """Final-answer accuracy grouped by the problem's number of steps."""
    by: dict[int, list[bool]] = {}
    for t in traces:
        by.setdefault(t.n_steps, []).append(t.correct)
    return {k: float(np.mean(v)) for k, v in sorted(by.items())}


def external_accuracy(model, items: Sequence[T.ExternalItem], batch_size: int = 256) -> dict[str, float]:
    """Final-answer accuracy on converted external items, per source task and 'all'."""
    gens = solve(model, [it.problem for it in items], batch_size)
    ok = np.array([T.check_answer(it.problem, g.text) for it, g in zip(items, gens)])
    tasks = np.array([it.task for it in items])
    out = {t: float(ok[tasks == t].mean()) for t in dict.fromkeys(tasks)}
    out["all"] = float(ok.mean())
    return out


def specialist_matrix(names: Sequence[str], problems: Sequence[T.Problem]):
    """Step accuracy (gold context) of each named model on each kind of step: DataFrame models x kinds."""
    import pandas as pd

    rows = {n: step_accuracy(load_model(n), problems) for n in names}
    return pd.DataFrame(rows).T.rename(columns=T.KIND_NAMES)
