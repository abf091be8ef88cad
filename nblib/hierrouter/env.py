"""HierRouter's environment: a problem solved hop by hop, a pool model chosen at each hop (gymnasium).

State (c_t, l_t, C_t): the context text so far (problem line plus the lines written), the hop index and the
cost spent. Observation (raw; the router projects it, `agent.Features`): the encoder's view of c_t, the hop
index, the hops left (the problem line tells how many steps it has) and C_t / cost_unit. Action: the index
of the pool model that writes the next line.

Cost is honest: each hop the router's own encoder reads the new tokens (a 'router' ledger entry, FLOPs per
token x tokens) and the chosen model reads the whole context and writes its line (a 'step' entry, FLOPs per
token x (tokens read + tokens written)); an episode's cost is the sum of both. Reward: -lam x (router +
call FLOPs) / cost_unit at every hop, plus the final-answer quality at the end, so the return is
quality - lam x cost / cost_unit (gamma = 1). A problem of L steps takes L hops; a wrong line ends the
episode at once with quality 0 (see `table`). Problems may have any length up to `horizon`.
"""
from __future__ import annotations

from typing import Sequence

import gymnasium as gym
import numpy as np

from .. import cost
from ..taskworld import problems as T
from .steps import StepCache, prompt
from .table import check_horizon, check_lam, quality, router_new_tokens, step_right


def episode_cost(ledger: cost.Ledger) -> float:
    """FLOPs of an episode: the sum of its ledger's entries (pool calls and the router's encoder)."""
    return float(sum(e.flops for e in ledger.entries if e.extra.get("role") in ("step", "router")))


def sequence_cost(cache: StepCache, problem: T.Problem, sequence: Sequence[str]) -> tuple[float, float, list[str]]:
    """(quality, pool FLOPs, lines) of running the pool models in `sequence`, one per hop, until a wrong line."""
    ctx, total, lines = prompt(problem), 0.0, []
    for k, name in enumerate(sequence[:problem.n_steps]):
        out = cache.step(ctx, name)
        total += cache.cost(name, out)
        lines.append(out.line)
        ctx += out.line + "\n"
        if not step_right(problem, k, out.line):
            break
    return quality(problem, lines), total, lines


def reference_cost(cache: StepCache, problems: Sequence[T.Problem], model: str | None = None) -> float:
    """Mean episode FLOPs of one pool model alone (default: the one with the most FLOPs per token)."""
    name = model or max(cache.pool, key=lambda m: m.flops_per_token).name
    return float(np.mean([sequence_cost(cache, p, [name] * p.n_steps)[1] for p in problems]))


class RouteEnv(gym.Env):
    """Route each hop of a task-world problem to one pool model; reward quality - lam x cost / cost_unit."""

    metadata = {"render_modes": []}

    def __init__(self, problems: Sequence[T.Problem], cache: StepCache, lam: float = 0.1,
                 horizon: int | None = None, cost_unit: float | None = None, seed: int | None = None):
        self.lam = check_lam(lam)
        self.problems = list(problems)
        if not self.problems:
            raise ValueError("RouteEnv needs at least one problem")
        self.horizon = check_horizon(horizon if horizon is not None else max(p.n_steps for p in self.problems),
                                     self.problems)
        self.cache = cache
        self.names = list(cache.names)
        self.cost_unit = float(cost_unit) if cost_unit is not None else reference_cost(cache, self.problems)
        if not self.cost_unit > 0:
            raise ValueError(f"cost_unit must be > 0 FLOPs, got {cost_unit!r}")
        self.action_space = gym.spaces.Discrete(len(self.names))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(cache.dim + 3,), dtype=np.float32)
        self._rng = np.random.default_rng(seed)
        self.problem: T.Problem | None = None

    # --- gymnasium ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode on a random problem (or options={'problem': index}); return (obs, info)."""
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        i = (options or {}).get("problem")
        i = int(self._rng.integers(len(self.problems))) if i is None else int(i)
        self.problem_index, self.problem = i, self.problems[i]
        self.context, self.hop, self.spent, self.done = prompt(self.problem), 0, 0.0, False
        self.lines: list[str] = []
        self.actions: list[str] = []
        self.ledger = cost.Ledger()
        return self._obs(), {"problem": self.problem.text}

    def step(self, action):
        """Call the chosen pool model on the context; return (obs, reward, terminated, truncated, info)."""
        if self.problem is None or self.done:
            raise RuntimeError("call reset() before step(), and again after an episode ends")
        a = int(action)
        if not 0 <= a < len(self.names):
            raise ValueError(f"action {action!r} is not a pool index 0..{len(self.names) - 1} ({self.names})")
        name = self.names[a]
        router = self._log_router()
        out = self.cache.step(self.context, name)
        flops = self.cache.cost(name, out)
        self.ledger.add(name, flops=flops, prompt_tokens=out.tokens_in, completion_tokens=out.tokens_out, calls=1,
                        role="step", hop=self.hop)
        self.spent += flops + router
        self.lines.append(out.line)
        self.actions.append(name)
        self.context += out.line + "\n"
        right = step_right(self.problem, self.hop, out.line)
        self.hop += 1
        reward = -self.lam * (flops + router) / self.cost_unit
        self.done = not right or self.hop == self.problem.n_steps
        info = {"model": name, "line": out.line, "flops": flops, "router_flops": router, "right": right}
        if self.done:
            q = quality(self.problem, self.lines)
            reward += q
            info.update(quality=q, cost=self.spent, pool_cost=self.spent - self.router_cost(),
                        router_cost=self.router_cost(), episode_return=q - self.lam * self.spent / self.cost_unit,
                        actions=list(self.actions), lines=list(self.lines))
        return self._obs(), float(reward), self.done, False, info

    # --- helpers --------------------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        """Encoder view of the context (zeros once the episode is over), hop, hops left, cost spent / cost_unit."""
        over = self.done or self.hop >= self.problem.n_steps
        emb = np.zeros(self.cache.dim, np.float32) if over else self.cache.embed(self.context)
        return np.concatenate([emb, [self.hop, self.problem.n_steps - self.hop, self.spent / self.cost_unit]]
                              ).astype(np.float32)

    def _log_router(self) -> float:
        """The router reads the context's new tokens before each hop (as with a KV cache): a 'router' entry."""
        fpt = float(getattr(self.cache.encoder, "flops_per_token", 0.0))
        if fpt <= 0:
            return 0.0
        new = router_new_tokens(self.problem, self.hop)
        self.ledger.add("router", flops=fpt * new, prompt_tokens=new, calls=1, role="router", hop=self.hop)
        return fpt * new

    def router_cost(self) -> float:
        """FLOPs the router's encoder spent this episode (part of the episode's cost and of the reward)."""
        return float(sum(e.flops for e in self.ledger.entries if e.extra.get("role") == "router"))
