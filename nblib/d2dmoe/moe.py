"""D2DMoE steps 4-6 at inference: the router, the dynamic-k (and static top-k) rules, and the MoE FFN layer.

- `Router`: g(x) = |W_b ReLU(W_a x + c_a) + c_b|, one predicted output norm per expert.
- `dynamic_k_mask(pred, tau)`: the paper's rule, run expert e when g_e(x) >= tau * max_e' g_e'(x)
  (tau = 0: every expert, tau = 1: only the argmax). The official code writes the threshold as
  max * (1 - tau_code): `tau_from_code` converts.
- `topk_mask(pred, k)`: MoEfication's static top-k baseline.
- `MoEFFN`: the converted layer. The output is b_out + sum of the selected experts' outputs, no gate
  weights. `impl="grouped"` is the CPU execution path that turns skipped experts into saved time:
  tokens are grouped by expert and each expert runs only on its rows (gather, two small matmuls,
  index_add). `impl="masked"` computes every expert and zeroes the skipped ones: the same numbers at the
  dense cost, used to evaluate accuracy quickly and as a check on the grouped path. `impl="kernel"`:
  the grouped path as one compiled call per layer for a single request, router included (`kernel`); it falls
  back to "grouped" where it cannot run (`kernel.status(layer)` says why).
"""
from __future__ import annotations

import torch
from torch import nn

from .. import checks
from .experts import Experts, ExpertShape
from .ffn import ACTIVATIONS
from .kernel import layer_forward

MODES = ("all", "dynk", "topk", "oracle", "oracle_topk")
IMPLS = ("grouped", "masked", "kernel")


RULE_PARAMS = {"all": (), "dynk": ("tau",), "topk": ("k",), "oracle": ("tau",),
               "oracle_topk": ("k",)}   # what each rule reads (oracle*: the true output norms, no router)


def check_tau(tau: float) -> float:
    """tau as a float in [0, 1] (numpy scalars too); a ValueError (checks.BadArgument) otherwise."""
    return checks.number("tau", tau, low=0, high=1, hint="0 runs every expert, 1 only the top one")


def tau_from_code(tau_code: float) -> float:
    """The paper's tau from the official code's threshold parameter (its rule is max * (1 - tau_code))."""
    return 1.0 - check_tau(tau_code)


def _check_pred(pred) -> int:
    """The expert count E of a (..., E) floating-point tensor of router predictions; a clear error otherwise."""
    if not isinstance(pred, torch.Tensor) or not pred.is_floating_point() or pred.dim() < 1 or pred.shape[-1] < 1:
        raise checks.BadArgument(f"pred must be a floating-point tensor (tokens, experts) with at least one expert, "
                                 f"got {type(pred).__name__} {tuple(getattr(pred, 'shape', ()))}")
    return pred.shape[-1]


def dynamic_k_mask(pred: torch.Tensor, tau: float) -> torch.Tensor:
    """Boolean (N, E): expert e runs for token n when pred[n, e] >= tau * max_e pred[n, e] (never empty)."""
    tau = check_tau(tau)
    _check_pred(pred)
    mask = pred >= tau * pred.max(dim=-1, keepdim=True).values
    mask.scatter_(-1, pred.argmax(dim=-1, keepdim=True), True)  # the top expert always runs (NaN-safe)
    return mask


def topk_mask(pred: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean (N, E): the k experts with the highest predictions run for each token."""
    E = _check_pred(pred)
    k = checks.whole("k", k, low=1, high=E)   # numpy integers too; the error says the layer's expert count
    mask = torch.zeros_like(pred, dtype=torch.bool)
    return mask.scatter_(-1, pred.topk(k, dim=-1).indices, True)


class Router(nn.Module):
    """Two-layer router predicting each expert's output norm: |W_b ReLU(W_a x + c_a) + c_b| (non-negative)."""

    def __init__(self, d: int, n_experts: int, hidden: int = 128):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, n_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted output norms (..., E)."""
        return self.fc2(torch.relu(self.fc1(x))).abs()

    @property
    def hidden(self) -> int:
        """Router hidden width."""
        return self.fc1.out_features

    def flops_per_token(self) -> int:
        """Matmul FLOPs of one token through the router (multiply-add = 2)."""
        return 2 * self.fc1.in_features * self.fc1.out_features + 2 * self.fc2.in_features * self.fc2.out_features


class MoEFFN(nn.Module, ExpertShape):
    """A dense FFN converted into experts, executed per token by a routing rule (mode/tau/k), with usage stats."""

    def __init__(self, experts: Experts, router: Router | None = None, mode: str = "all", tau: float = 0.0,
                 k: int = 1, impl: str = "grouped"):
        super().__init__()
        self.w_in = nn.Parameter(experts.w_in, requires_grad=False)
        self.b_in = None if experts.b_in is None else nn.Parameter(experts.b_in, requires_grad=False)
        self.w_gate = None if experts.w_gate is None else nn.Parameter(experts.w_gate, requires_grad=False)
        self.w_out = nn.Parameter(experts.w_out, requires_grad=False)
        self.b_out = None if experts.b_out is None else nn.Parameter(experts.b_out, requires_grad=False)
        self.act = experts.act
        self.register_buffer("neurons", experts.neurons, persistent=False)
        self.router = router if router is not None else Router(experts.d, experts.n_experts)
        self.tau, self.k = check_tau(tau), checks.whole("k", k, low=1, high=experts.n_experts)
        self.set_rule(mode, tau=tau if mode in ("dynk", "oracle") else None, k=k if mode in ("topk", "oracle_topk") else None,
                      impl=impl)
        self.record = False
        self.counts: list[torch.Tensor] = []  # per forward: experts executed per token (N,) when record is on
        self.inputs: list[torch.Tensor] = []  # per forward: the FFN inputs (N, d) when capture is on
        self.capture = False

    # ------------------------------------------------------------------ configuration
    def set_rule(self, mode: str, tau: float | None = None, k: int | None = None, impl: str | None = None) -> None:
        """Choose the routing rule: 'all', 'dynk' (tau), 'topk' (k), 'oracle' / 'oracle_topk' (true norms; tau / k).

        The rule's own parameter is required (no earlier value is kept silently) and a parameter the rule does
        not use is refused (`topk` with `tau=` would otherwise run with the old k).
        """
        checks.one_of("mode", mode, MODES)
        if impl is not None:
            checks.one_of("impl", impl, IMPLS)
        needs = RULE_PARAMS[mode]
        for name, v in (("tau", tau), ("k", k)):
            if v is not None and name not in needs:
                use = [m for m, p in RULE_PARAMS.items() if name in p]
                raise checks.BadArgument(f"{name}={v!r} has no effect with mode {mode!r} (it "
                                         f"{'takes ' + needs[0] if needs else 'takes no parameter'}): drop it, "
                                         f"or pick a mode that uses {name} ({use})")
            if v is None and name in needs:
                example = "tau=0.2" if name == "tau" else "k=2"
                raise checks.BadArgument(f"mode {mode!r} needs {name}: e.g. set_rule(layers, {mode!r}, {example})")
        new_tau = check_tau(tau) if tau is not None else self.tau
        new_k = checks.whole("k", k, low=1, high=self.n_experts) if k is not None else self.k
        if impl is not None:
            self.impl = impl
        self.mode, self.tau, self.k = mode, new_tau, new_k

    # ------------------------------------------------------------------ maths
    def expert_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Every expert's hidden activations (N, E, s) for inputs x (N, d)."""
        return self.dense_hidden(x).reshape(x.shape[0], self.n_experts, self.size)

    def dense_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden activations (N, E*s) of the whole FFN as one plain matmul (expert-major neuron order)."""
        f = ACTIVATIONS[self.act]
        b = None if self.b_in is None else self.b_in.reshape(-1)
        pre = nn.functional.linear(x, self.w_in.reshape(-1, self.d), b)
        if self.w_gate is not None:
            return f(nn.functional.linear(x, self.w_gate.reshape(-1, self.d))) * pre
        return f(pre)

    def dense_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The dense FFN (every neuron, two plain matmuls): the baseline the grouped path is timed against."""
        y = self.dense_hidden(x) @ self.w_out.reshape(-1, self.d)
        return y + self.b_out if self.b_out is not None else y

    def expert_norms(self, x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """The true L2 norm of each expert's output contribution (N, E): the routers' regression target."""
        out = []
        for i in range(0, x.shape[0], chunk):
            h = self.expert_hidden(x[i:i + chunk])
            out.append(torch.einsum("nes,esd->ned", h, self.w_out).norm(dim=-1))
        return torch.cat(out) if out else x.new_zeros(0, self.n_experts)

    def routing_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """Boolean (N, E) of the experts to run for inputs x (N, d) under the current rule; None = all."""
        if self.mode == "all":
            return None
        if self.mode == "oracle":
            return dynamic_k_mask(self.expert_norms(x), self.tau)
        if self.mode == "oracle_topk":
            return topk_mask(self.expert_norms(x), self.k)
        pred = self.router(x)
        return dynamic_k_mask(pred, self.tau) if self.mode == "dynk" else topk_mask(pred, self.k)

    def run_masked(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Every expert computed, skipped ones zeroed (same numbers as run_grouped, dense cost)."""
        if mask is None:
            return self.dense_forward(x)
        h = self.expert_hidden(x) * mask.unsqueeze(-1).to(x.dtype)
        y = h.reshape(x.shape[0], -1) @ self.w_out.reshape(-1, self.d)
        return y + self.b_out if self.b_out is not None else y

    def run_grouped(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Only the selected experts run, each on the rows of the tokens routed to it (gather, matmul, index_add)."""
        if mask is None:
            return self.dense_forward(x)
        f = ACTIVATIONS[self.act]
        y = x.new_zeros(x.shape[0], self.d) if self.b_out is None else self.b_out.expand(x.shape[0], -1).clone()
        tok, exp = mask.nonzero(as_tuple=True)  # (pairs,) sorted by token
        order = torch.argsort(exp, stable=True)
        tok, exp = tok[order], exp[order]
        counts = torch.bincount(exp, minlength=self.n_experts).tolist()
        start = 0
        for e, c in enumerate(counts):
            if not c:
                continue
            idx = tok[start:start + c]
            start += c
            xe = x.index_select(0, idx)  # (c, d)
            pre = xe @ self.w_in[e].T  # (c, s)
            if self.w_gate is not None:
                h = f(xe @ self.w_gate[e].T) * pre
            else:
                h = f(pre + self.b_in[e] if self.b_in is not None else pre)
            y.index_add_(0, idx, h @ self.w_out[e])
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The MoE FFN output for x (..., d) under the current rule."""
        shape = x.shape
        flat = x.reshape(-1, self.d)
        if self.capture:
            self.inputs.append(flat.detach())
        if self.impl == "kernel":
            y, mask = layer_forward(self, flat)
        else:
            mask = self.routing_mask(flat)
            y = self.run_masked(flat, mask) if self.impl == "masked" else self.run_grouped(flat, mask)
        if self.record:
            n = flat.shape[0]
            self.counts.append(torch.full((n,), self.n_experts) if mask is None else mask.sum(-1).cpu())
        return y.reshape(*shape[:-1], self.d)

    # ------------------------------------------------------------------ cost
    def expert_flops(self) -> int:
        """Matmul FLOPs of one expert for one token (2 or 3 matrices of d x s, multiply-add = 2)."""
        return 2 * self.d * self.size * (3 if self.w_gate is not None else 2)

    def dense_flops(self) -> int:
        """Matmul FLOPs of the dense FFN for one token."""
        return self.expert_flops() * self.n_experts

    def flops(self, executed: torch.Tensor | int, tokens: int | None = None) -> int:
        """FLOPs of routing `tokens` tokens and running `executed` (total) experts: what the grouped path does."""
        total = int(executed.sum()) if isinstance(executed, torch.Tensor) else int(executed)
        n = tokens if tokens is not None else (executed.numel() if isinstance(executed, torch.Tensor) else 0)
        router = self.router.flops_per_token() * n if self.mode in ("dynk", "topk") else 0
        return total * self.expert_flops() + router
