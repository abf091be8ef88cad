"""D2DMoE step 3: split each FFN's hidden neurons into equal-size experts by balanced k-means.

Each hidden neuron is a row of W_in (of W_gate for a gated MLP: the gate decides
where ReLU gives exact zeros). Rows are L2-normalised, scikit-learn's KMeans finds
`n_experts` centroids, and a balancing step assigns neurons to clusters with
exactly d_ff / n_experts each: a minimum-cost assignment of neurons to
cluster "slots" (scipy's linear_sum_assignment over squared distances), then the
centroids are re-estimated and the assignment repeated a few times. This is
MoEfication's parameter-clustering split with the constraint of
k_means_constrained.KMeansConstrained (min = max cluster size), without the
extra dependency.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import checks
from .ffn import FFNWeights


def check_expert_count(d_ff: int, n_experts: int) -> int:
    """The expert size d_ff / n_experts; ValueError when n_experts does not divide d_ff."""
    if isinstance(n_experts, bool) or not isinstance(n_experts, (int, np.integer)) or n_experts < 1:
        raise ValueError(f"n_experts must be a whole number >= 1, got {n_experts!r}")
    d_ff = checks.whole("d_ff", d_ff, low=1)
    if d_ff % n_experts:
        divisors = [k for k in range(1, d_ff + 1) if d_ff % k == 0]
        raise ValueError(f"{n_experts} experts do not divide the FFN width {d_ff}: pick a divisor of {d_ff} "
                         f"(e.g. {', '.join(map(str, divisors[-8:]))}) so every expert has the same size")
    return d_ff // int(n_experts)


def balanced_kmeans(rows: np.ndarray, n_clusters: int, seed: int = 0, rounds: int = 2) -> np.ndarray:
    """Cluster ids (n,) with exactly n / n_clusters rows per cluster: KMeans, then balanced reassignment."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans

    n = rows.shape[0]
    size = check_expert_count(n, n_clusters)
    if n_clusters == 1:
        return np.zeros(n, dtype=np.int64)
    km = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed, max_iter=100).fit(rows)
    centers = km.cluster_centers_
    labels = km.labels_
    for _ in range(rounds):
        d2 = ((rows[:, None, :] - centers[None, :, :]) ** 2).sum(-1)  # (n, k)
        cost = np.repeat(d2, size, axis=1)  # (n, n): slot j belongs to cluster j // size
        r, c = linear_sum_assignment(cost)
        new = np.empty(n, dtype=np.int64)
        new[r] = c // size
        if np.array_equal(new, labels):
            break
        labels = new
        centers = np.stack([rows[labels == k].mean(0) for k in range(n_clusters)])
    return labels


class ExpertShape:
    """E, s and d read from stacked expert weights `w_in` (E, s, d): shared by `Experts` and `moe.MoEFFN`."""

    w_in: torch.Tensor

    @property
    def n_experts(self) -> int:
        """Number of experts E."""
        return self.w_in.shape[0]

    @property
    def size(self) -> int:
        """Neurons per expert s."""
        return self.w_in.shape[1]

    @property
    def d(self) -> int:
        """Model width."""
        return self.w_in.shape[2]


@dataclass
class Experts(ExpertShape):
    """An FFN split into E experts of size s: stacked per-expert weights, the permutation, and b_out."""

    w_in: torch.Tensor  # (E, s, d)
    b_in: torch.Tensor | None  # (E, s)
    w_gate: torch.Tensor | None  # (E, s, d)
    w_out: torch.Tensor  # (E, s, d): expert e's columns of W_out, transposed (rows of h -> output)
    b_out: torch.Tensor | None  # (d,): added once, outside the experts
    act: str
    neurons: torch.Tensor  # (E, s) the original hidden-neuron ids of each expert



def split_experts(ffn: FFNWeights, n_experts: int, seed: int = 0) -> Experts:
    """Split an FFN into `n_experts` equal experts by balanced k-means of its normalised input rows."""
    size = check_expert_count(ffn.d_ff, n_experts)
    key = ffn.w_gate if ffn.w_gate is not None else ffn.w_in
    rows = torch.nn.functional.normalize(key.float(), dim=1).numpy().astype(np.float64)
    labels = balanced_kmeans(rows, n_experts, seed=seed)
    neurons = torch.from_numpy(np.argsort(labels, kind="stable").reshape(n_experts, size))
    return experts_from_partition(ffn, neurons)


def experts_from_partition(ffn: FFNWeights, neurons: torch.Tensor) -> Experts:
    """Experts holding the given neuron ids (E, s): a partition of range(d_ff)."""
    flat = neurons.reshape(-1)
    if flat.numel() != ffn.d_ff or not torch.equal(flat.sort().values, torch.arange(ffn.d_ff)):
        raise ValueError(f"the experts' neurons must be a partition of range({ffn.d_ff})")
    E, s = neurons.shape
    w_in = ffn.w_in[flat].reshape(E, s, -1).contiguous()
    b_in = None if ffn.b_in is None else ffn.b_in[flat].reshape(E, s).contiguous()
    w_gate = None if ffn.w_gate is None else ffn.w_gate[flat].reshape(E, s, -1).contiguous()
    w_out = ffn.w_out.T[flat].reshape(E, s, -1).contiguous()
    return Experts(w_in, b_in, w_gate, w_out, ffn.b_out, ffn.act, neurons)
