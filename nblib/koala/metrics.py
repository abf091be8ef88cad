"""Sampling and scoring the tiny U-Nets: ancestral DDPM samples, the caption classifier, Frechet distance, cost.

Caption accuracy asks: does a sample show the digit its caption names? The
Frechet distance is measured in the classifier's feature space.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..cost import measure_flops, peak_memory, ratio_spread, time_fn, time_interleaved
from .recipes import count_params
from .tiny import DATA_DIR, RES, TEMPLATES, caption_index, load_into, scheduler

@torch.no_grad()
def sample(unet, caption_ids: torch.Tensor, states: torch.Tensor, seed: int = 0, steps: int = 20,
           guidance: float = 2.0) -> torch.Tensor:
    """Ancestral DDPM samples (N, 1, 16, 16) in [-1, 1] for caption indices, with classifier-free guidance.

    Ancestral (stochastic) steps with "trailing" spacing: on these small, briefly trained models they
    score far better than deterministic DDIM (measured: caption accuracy 0.98 vs 0.82 at 10 steps).
    """
    from diffusers import DDPMScheduler

    sched = DDPMScheduler.from_config(scheduler().config, timestep_spacing="trailing")
    sched.set_timesteps(steps)
    n = len(caption_ids)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((n, unet.config.in_channels, RES, RES), generator=gen)
    cond, uncond = states[caption_ids], states[torch.zeros(n, dtype=torch.long)]
    ehs = torch.cat([uncond, cond]) if guidance != 1.0 else cond
    for t in sched.timesteps:
        inp = torch.cat([x, x]) if guidance != 1.0 else x
        eps = unet(inp, t, ehs).sample
        if guidance != 1.0:
            e_u, e_c = eps.chunk(2)
            eps = e_u + guidance * (e_c - e_u)
        x = sched.step(eps, t, x, generator=gen).prev_sample
    return x.clamp(-1, 1)


# ----------------------------------------------------------------------------- scoring
class DigitClassifier(torch.nn.Module):
    """A small CNN on 16x16 digits; `features` (64-d) is the space of the Frechet distance."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU())
        self.head = torch.nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate 64-d features."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(data: dict, steps: int = 600, batch: int = 128, lr: float = 2e-3, seed: int = 0,
                     progress: bool = True) -> tuple[DigitClassifier, float]:
    """Train the caption classifier on the real train digits; return it and its test accuracy.

    `nblib.training.fit`: AdamW at a constant `lr` (transformers' "constant" schedule), no clipping.
    """
    from ..training import fit

    torch.manual_seed(seed)
    clf = DigitClassifier()
    gen = torch.Generator().manual_seed(seed)
    x, y = data["train_x"], data["train_y"]

    def loss_fn(step):
        idx = torch.randint(0, len(y), (batch,), generator=gen)
        xb = x[idx] + 0.1 * torch.randn(x[idx].shape, generator=gen)  # robust to sampler noise
        return F.cross_entropy(clf(xb), y[idx])

    fit(clf, loss_fn, steps, lr=lr, progress=progress, desc="train classifier")
    return clf, classifier_accuracy(clf, data["test_x"], data["test_y"])


@torch.no_grad()
def classifier_accuracy(clf: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of images the classifier labels as `y`."""
    return float((clf(x).argmax(-1) == y).float().mean())


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows are samples)."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (n>=2, d) feature arrays with the same d, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(ca cb) = sum of sqrt eigenvalues of the symmetric sqrt(ca) cb sqrt(ca)
    w, v = linalg.eigh(ca)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(linalg.eigvalsh(root @ cb @ root), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_covmean)


def eval_captions(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A balanced, seeded set of (digit, caption index) pairs to generate for evaluation."""
    gen = torch.Generator().manual_seed(seed)
    digits = torch.arange(n) % 10
    tmpl = torch.randint(0, len(TEMPLATES), (n,), generator=gen)
    return digits, caption_index(digits, tmpl)


@torch.no_grad()
def evaluate(unet, clf: DigitClassifier, states: torch.Tensor, real_x: torch.Tensor, n: int = 200,
             steps: int = 20, guidance: float = 2.0, seed: int = 0, batch: int = 100) -> dict:
    """Caption accuracy and Frechet distance (classifier features, vs real test digits) of n samples."""
    digits, caps = eval_captions(n, seed)
    xs = torch.cat([sample(unet, caps[i:i + batch], states, seed=seed + i, steps=steps, guidance=guidance)
                    for i in range(0, n, batch)])
    acc = classifier_accuracy(clf, xs, digits)
    fd = frechet_distance(clf.features(xs).numpy(), clf.features(real_x).numpy())
    return {"caption_acc": acc, "fd": fd, "n": n, "steps": steps, "guidance": guidance}


def load_classifier(data_dir: str | Path | None = None) -> DigitClassifier:
    """Load the committed caption classifier."""
    data_dir = Path(data_dir) if data_dir else DATA_DIR
    return load_into(DigitClassifier(), data_dir / "classifier.safetensors")



def measure_costs(unet, states: torch.Tensor, steps: int = 20, guidance: float = 2.0, repeats: int = 3,
                  big_batch: int = 16, time_it: bool = True) -> dict:
    """Params, FLOPs per denoising step (CFG: two forwards), latency per image and working memory.

    Latency is measured for one image (batch 1: per-module overhead dominates on a CPU) and per
    image within a batch of `big_batch` (closer to the FLOP ratio). `time_it=False` skips it: to compare
    models, time them together with `interleaved_latency`.
    """
    x = torch.zeros(2 if guidance != 1.0 else 1, 1, RES, RES)
    ehs = states[torch.tensor([0, 1])] if guidance != 1.0 else states[torch.tensor([1])]
    _, flops = measure_flops(lambda: unet(x, torch.tensor(500), ehs))
    one = lambda: sample(unet, torch.tensor([1]), states, seed=0, steps=steps, guidance=guidance)
    many = lambda: sample(unet, torch.arange(big_batch) % 30 + 1, states, seed=0, steps=steps, guidance=guidance)
    _, work_mb, _ = peak_memory(one)
    out = {"params": count_params(unet), "flops_per_step": flops, "work_mb": work_mb,
           "weights_mb": sum(p.numel() * p.element_size() for p in unet.parameters()) / 1e6}
    if time_it:
        t1 = time_fn(one, warmup=1, repeats=repeats)
        tb = time_fn(many, warmup=0, repeats=max(1, repeats // 2))
        out.update({"latency_ms": t1.median_ms, "latency_spread_ms": t1.spread_ms,
                    f"latency_ms_per_image_b{big_batch}": tb.median_ms / big_batch})
    return out


def interleaved_latency(unets: dict, states: torch.Tensor, reference: str = "teacher", steps: int = 20,
                        guidance: float = 2.0, repeats: int = 5, big_batch: int = 16) -> dict:
    """Latency of several U-Nets timed in rounds (A, B, A, B ...) and each one's ratio to `reference`.

    Per model: median ms per image at batch 1 and at `big_batch`, and the per-round ratio to the reference
    as (median, min, max): a difference between two models is real only where their ratio ranges do not overlap.
    """
    if reference not in unets:
        raise ValueError(f"reference {reference!r} is not among the models {sorted(unets)}")
    out = {name: {} for name in unets}
    for batch in (1, big_batch):
        captions = torch.arange(batch) % 30 + 1
        fns = {name: (lambda u=u, c=captions: sample(u, c, states, seed=0, steps=steps, guidance=guidance))
               for name, u in unets.items()}
        timings = time_interleaved(fns, warmup=1, repeats=repeats)
        for name, t in timings.items():
            med, lo, hi = ratio_spread(t, timings[reference])
            out[name][f"ms_per_image_b{batch}"] = t.median_ms / batch
            out[name][f"latency_ratio_b{batch}"] = med
            out[name][f"latency_ratio_b{batch}_range"] = (lo, hi)
            out[name][f"latency_ratio_b{batch}_spread"] = hi - lo
    return out


def accuracy_interval(acc: float, n: int, level: float = 0.95, n_boot: int = 4000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of an accuracy measured on n items (resampling its n right/wrong outcomes)."""
    if n < 1 or not 0 <= acc <= 1 or not 0 < level < 1:
        raise ValueError(f"need n >= 1, 0 <= acc <= 1 and 0 < level < 1, got n={n}, acc={acc}, level={level}")
    draws = np.random.default_rng(seed).binomial(n, acc, size=n_boot) / n
    return tuple(float(q) for q in np.quantile(draws, [(1 - level) / 2, (1 + level) / 2]))


def accuracy_gap_interval(acc_a: float, acc_b: float, n: int, level: float = 0.95, n_boot: int = 4000,
                          seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of acc_a - acc_b, each measured on n items (resampled independently: conservative)."""
    if n < 1 or not (0 <= acc_a <= 1 and 0 <= acc_b <= 1):
        raise ValueError(f"need n >= 1 and accuracies in [0, 1], got n={n}, {acc_a}, {acc_b}")
    rng = np.random.default_rng(seed)
    gap = (rng.binomial(n, acc_a, size=n_boot) - rng.binomial(n, acc_b, size=n_boot)) / n
    return tuple(float(q) for q in np.quantile(gap, [(1 - level) / 2, (1 + level) / 2]))


def _range_text(median: float, lo: float, hi: float, digits: int = 2) -> str:
    return f"{median:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


def cost_quality_table(costs: dict, quality: dict, latency: dict, reference: str = "teacher") -> "Any":
    """One row per model: params, FLOPs, interleaved latency ratios with their range, memory, accuracy with its interval."""
    import pandas as pd

    rows = {}
    for name, c in costs.items():
        q, lat = quality[name], latency[name]
        lo, hi = accuracy_interval(q["caption_acc"], q["n"])
        rows[name] = {"params": int(c["params"]), "MFLOPs/step": c["flops_per_step"] / 1e6,
                      "ms/image b1": lat["ms_per_image_b1"],
                      "vs teacher b1": _range_text(lat["latency_ratio_b1"], *lat["latency_ratio_b1_range"]),
                      "ms/image b16": lat["ms_per_image_b16"],
                      "vs teacher b16": _range_text(lat["latency_ratio_b16"], *lat["latency_ratio_b16_range"]),
                      "work MB": c["work_mb"],
                      "caption acc [95 %]": _range_text(q["caption_acc"], lo, hi),
                      "acc vs teacher": q["caption_acc"] / max(quality[reference]["caption_acc"], 1e-9),
                      "FD": q["fd"]}
    return pd.DataFrame(rows).T.astype({"params": int, "MFLOPs/step": float, "ms/image b1": float,
                                        "ms/image b16": float, "work MB": float, "acc vs teacher": float,
                                        "FD": float})


def ablation_table(results: dict) -> "Any":
    """The training script's equal-steps ablation (results.json): recipe, feature KD, steps, accuracy, FD per model."""
    import pandas as pd

    rows = {name: {"recipe": s["recipe"], "feature KD": s["features"], "steps": int(s["config"]["steps"]),
                   "images": int(results["eval"][name]["n"]), "caption acc": results["eval"][name]["caption_acc"],
                   "FD": results["eval"][name]["fd"]} for name, s in results["students"].items()}
    t = results["eval"]["teacher"]
    rows["teacher"] = {"recipe": "teacher", "feature KD": "-", "steps": int(results["teacher"]["steps"]),
                       "images": int(t["n"]), "caption acc": t["caption_acc"], "FD": t["fd"]}
    return pd.DataFrame(rows).T.astype({"steps": int, "images": int, "caption acc": float, "FD": float})


def compare_students(results: dict, a: str, b: str, level: float = 0.95) -> str:
    """A sentence comparing two evaluated models' caption accuracy with its bootstrap interval, and their FD."""
    ea, eb = results["eval"][a], results["eval"][b]
    n = min(int(ea["n"]), int(eb["n"]))
    lo, hi = accuracy_gap_interval(ea["caption_acc"], eb["caption_acc"], n, level=level)
    gap = ea["caption_acc"] - eb["caption_acc"]
    verdict = ("higher" if lo > 0 else "lower" if hi < 0 else "not distinguishable at this sample size")
    return (f"{a} vs {b}: caption accuracy {ea['caption_acc']:.3f} vs {eb['caption_acc']:.3f}, gap {gap:+.3f} "
            f"({level:.0%} bootstrap interval {lo:+.3f} to {hi:+.3f}, {n:,} images each): {verdict}; "
            f"FD {ea['fd']:.2f} vs {eb['fd']:.2f} (lower is better)")


def latency_vs_flops(costs: dict, latency: dict, reference: str = "teacher", batches=(1, 16)) -> "Any":
    """Per student: its FLOP ratio to `reference` beside its latency ratio (median and range over the rounds).

    For each batch in `batches`, "falls" says how latency fell against FLOPs: "less" (the whole latency range is
    above the FLOP ratio), "more" (below it) or "as much" (the FLOP ratio lies inside the range).
    """
    import pandas as pd

    if reference not in costs or reference not in latency:
        raise ValueError(f"reference {reference!r} needs costs and latency; have {sorted(costs)} / {sorted(latency)}")
    ref = costs[reference]["flops_per_step"]
    rows = {}
    for name, c in costs.items():
        if name == reference:
            continue
        flops = c["flops_per_step"] / ref
        row = {"FLOPs vs teacher": flops}
        for b in batches:
            lat = latency[name]
            lo, hi = lat[f"latency_ratio_b{b}_range"]
            row[f"latency b{b}"] = lat[f"latency_ratio_b{b}"]
            row[f"latency b{b} min"], row[f"latency b{b} max"] = lo, hi
            row[f"falls b{b}"] = "less" if lo > flops else "more" if hi < flops else "as much"
        rows[name] = row
    return pd.DataFrame(rows).T


def latency_vs_flops_sentences(table, batches=(1, 16)) -> str:
    """Markdown, computed from `latency_vs_flops`: per batch, how many students' latency fell less/more than FLOPs."""
    from .. import prose

    words = {"less": "less than FLOPs", "more": "more than FLOPs", "as much": "as much as FLOPs (within the range)"}
    out = []
    for b in batches:
        col = table[f"falls b{b}"]
        parts = []
        for kind in ("less", "more", "as much"):
            names = list(col.index[col == kind])
            if not names:
                continue
            r = table.loc[names[0]]
            example = (f"{names[0]}: {prose.times(r['FLOPs vs teacher'])} FLOPs, {prose.times(r[f'latency b{b}'])} "
                       f"latency [{prose.number(r[f'latency b{b} min'])}-{prose.number(r[f'latency b{b} max'])}]")
            parts.append(f"{words[kind]} for {len(names)} of {len(col)} ({', '.join(names)}; e.g. {example})")
        where = "alone (batch 1)" if b == 1 else f"within a batch of {b}"
        out.append(f"- **Per image {where}**, latency fell " + "; ".join(parts) + ".")
    b0, b1 = batches[0], batches[-1]
    gap0 = (table[f"latency b{b0}"] - table["FLOPs vs teacher"]).abs().median()
    gap1 = (table[f"latency b{b1}"] - table["FLOPs vs teacher"]).abs().median()
    closer = (f"at batch {b1} than at batch {b0}" if gap1 < gap0 else f"at batch {b0} than at batch {b1}")
    out.append(f"- The latency ratio sits closer to the FLOP ratio {closer} (median gap "
               f"{prose.number(min(gap0, gap1))} against {prose.number(max(gap0, gap1))}).")
    return "\n".join(out)
