"""Many episodes at once on the step table's arrays: the batched twin of `env.RouteEnv` (same rules, same costs).

`walk` runs one episode per problem, hop by hop over all problems still running: `choose(hop, rows, spent)`
returns the pool index for each running problem; a wrong line ends that problem's episode with quality 0.
`score` turns the result into quality, FLOPs (pool + the router's encoder when the method reads it) and
token usage per model, which `usage` hands to the price lens (`nblib.cost.reprice`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import checks
from .table import Arrays


@dataclass
class Walk:
    """One episode per problem: actions (n, H; -1 where no hop ran), quality, FLOPs and hops run."""

    actions: np.ndarray
    quality: np.ndarray
    pool_flops: np.ndarray
    router_flops: np.ndarray
    hops: np.ndarray

    @property
    def flops(self) -> np.ndarray:
        """Each episode's whole cost: pool calls + the router's encoder."""
        return self.pool_flops + self.router_flops


def walk(A: Arrays, choose: Callable[[int, np.ndarray, np.ndarray], np.ndarray], reads_context: bool,
         cost_unit: float = 1.0) -> Walk:
    """Run every problem's episode; `choose(hop, rows, spent / cost_unit)` picks a pool index per running row.

    `reads_context`: the method runs the router's encoder every hop (charged as in RouteEnv) or not (a fixed
    rule or a model told the answer, like the oracle).
    """
    n, H, M = A.right.shape
    actions = np.full((n, H), -1, dtype=int)
    pool = np.zeros(n)
    router = np.zeros(n)
    alive = np.ones(n, bool)
    ok = np.ones(n, bool)
    for k in range(H):
        rows = np.flatnonzero(alive & (A.n_steps > k))
        if len(rows) == 0:
            break
        if reads_context:
            router[rows] += A.router_flops[rows, k]
        a = np.asarray(choose(k, rows, (pool[rows] + router[rows]) / cost_unit), dtype=int)
        if a.shape != rows.shape or (a < 0).any() or (a >= M).any():
            raise ValueError(f"choose must return one pool index 0..{M - 1} per running problem")
        actions[rows, k] = a
        pool[rows] += A.flops[rows, k, a]
        good = A.right[rows, k, a]
        ok[rows[~good]] = False
        alive[rows[~good]] = False
    hops = (actions >= 0).sum(1)
    return Walk(actions, (ok & (hops == A.n_steps)).astype(float), pool, router, hops)


def fixed(A: Arrays, per_hop: np.ndarray, reads_context: bool = False) -> Walk:
    """Episodes that call the pool index `per_hop[i, k]` at hop k of problem i (or `per_hop[k]` for every one)."""
    per_hop = np.asarray(per_hop, dtype=int)
    M = A.right.shape[2]
    if per_hop.size and ((per_hop < 0).any() or (per_hop >= M).any()):
        raise checks.BadArgument(f"per_hop must hold pool indices 0..{M - 1} (one per hop), got values "
                                 f"{sorted(set(per_hop[(per_hop < 0) | (per_hop >= M)].tolist()))[:5]}")
    if per_hop.ndim == 1:
        return walk(A, lambda k, rows, spent: np.full(len(rows), per_hop[k]), reads_context)
    return walk(A, lambda k, rows, spent: per_hop[rows, k], reads_context)


def usage(A: Arrays, w: Walk, router_name: str | None = None) -> dict[str, tuple[float, float]]:
    """Tokens read and written per model over all episodes ({model: (input, output)}), for `cost.reprice`."""
    out: dict[str, tuple[float, float]] = {}
    ii, kk = np.nonzero(w.actions >= 0)
    aa = w.actions[ii, kk]
    for j, m in enumerate(A.names):
        sel = aa == j
        if sel.any():
            out[m] = (float(A.tokens_in[ii[sel], kk[sel], j].sum()), float(A.tokens_out[ii[sel], kk[sel], j].sum()))
    if router_name is not None and w.router_flops.any():
        out[router_name] = (float(A.router_tokens[ii, kk].sum()), 0.0)
    return out
