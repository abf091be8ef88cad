"""HierRouter's environment: a problem solved hop by hop, a pool model chosen at each hop (gymnasium).

State (c_t, l_t, C_t): the context text so far (problem line plus the lines written), the hop index and
the cost spent. Observation: the encoder's view of c_t, a one-hot of l_t and C_t / cost_unit. Action: the
index of the pool model that writes the next line. Each call is one ledger entry (nblib.cost.Ledger) with
FLOPs = the model's FLOPs per token x (tokens read + tokens written). Reward: -lam x call cost / cost_unit
at every hop, plus the final-answer quality after the last hop, so an episode's return is
quality - lam x C_L / cost_unit (gamma = 1). Episodes run exactly `horizon` hops.
"""
from __future__ import annotations

from typing import Sequence

import gymnasium as gym
import numpy as np

from .. import cost
from ..taskworld import problems as T
from .table import StepCache, check_horizon, check_lam, prompt, quality


def episode_cost(ledger: cost.Ledger) -> float:
    """FLOPs of an episode's pool calls: the sum of its ledger's step entries."""
    return float(sum(e.flops for e in ledger.entries if e.extra.get("role") == "step"))


def sequence_cost(cache: StepCache, problem: T.Problem, sequence: Sequence[str]) -> tuple[float, float, list[str]]:
    """(quality, FLOPs, lines) of running the pool models in `sequence`, one per hop (table walk, no env)."""
    ctx, total, lines = prompt(problem), 0.0, []
    for name in sequence:
        out = cache.step(ctx, name)
        total += cache.cost(name, out)
        lines.append(out.line)
        ctx += out.line + "\n"
    return quality(problem, lines), total, lines


def reference_cost(cache: StepCache, problems: Sequence[T.Problem], horizon: int, model: str | None = None) -> float:
    """Mean episode FLOPs of one pool model alone (default: the one with the most FLOPs per token)."""
    name = model or max(cache.pool, key=lambda m: m.flops_per_token).name
    return float(np.mean([sequence_cost(cache, p, [name] * horizon)[1] for p in problems]))


class RouteEnv(gym.Env):
    """Route each hop of a task-world problem to one pool model; reward quality - lam x cost / cost_unit."""

    metadata = {"render_modes": []}

    def __init__(self, problems: Sequence[T.Problem], cache: StepCache, lam: float = 0.1, horizon: int = 3,
                 cost_unit: float | None = None, seed: int | None = None):
        self.horizon = check_horizon(horizon)
        self.lam = check_lam(lam)
        self.problems = list(problems)
        if not self.problems:
            raise ValueError("RouteEnv needs at least one problem")
        wrong = [p.text for p in self.problems if p.n_steps != self.horizon]
        if wrong:
            raise ValueError(f"{len(wrong)} problem(s) do not have horizon={self.horizon} steps (e.g. {wrong[0]!r}); "
                             f"draw them with taskworld.problems.problems(split, n, n_steps={self.horizon})")
        self.cache = cache
        self.names = list(cache.names)
        self.cost_unit = float(cost_unit) if cost_unit is not None else reference_cost(cache, self.problems, horizon)
        if not self.cost_unit > 0:
            raise ValueError(f"cost_unit must be > 0 FLOPs, got {cost_unit!r}")
        self.action_space = gym.spaces.Discrete(len(self.names))
        dim = cache.dim + self.horizon + 1
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
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
        self.context, self.hop, self.spent = prompt(self.problem), 0, 0.0
        self.lines: list[str] = []
        self.actions: list[str] = []
        self.ledger = cost.Ledger()
        self._router_tokens = 0
        return self._obs(), {"problem": self.problem.text}

    def step(self, action):
        """Call the chosen pool model on the context; return (obs, reward, terminated, truncated, info)."""
        if self.problem is None or self.hop >= self.horizon:
            raise RuntimeError("call reset() before step(), and again after an episode ends")
        a = int(action)
        if not 0 <= a < len(self.names):
            raise ValueError(f"action {action!r} is not a pool index 0..{len(self.names) - 1} ({self.names})")
        name = self.names[a]
        out = self.cache.step(self.context, name)
        flops = self.cache.cost(name, out)
        self.ledger.add(name, flops=flops, prompt_tokens=out.tokens_in, completion_tokens=out.tokens_out, calls=1,
                        role="step", hop=self.hop)
        self._log_router()
        self.spent += flops
        self.lines.append(out.line)
        self.actions.append(name)
        self.context += out.line + "\n"
        self.hop += 1
        reward = -self.lam * flops / self.cost_unit
        done = self.hop == self.horizon
        info = {"model": name, "line": out.line, "flops": flops}
        if done:
            q = quality(self.problem, self.lines)
            reward += q
            info.update(quality=q, cost=self.spent, episode_return=q - self.lam * self.spent / self.cost_unit,
                        actions=list(self.actions), lines=list(self.lines))
        return self._obs(), float(reward), done, False, info

    # --- helpers --------------------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        """Encoder view of the context (zeros after the last hop), one-hot hop, cost spent / cost_unit."""
        emb = self.cache.embed(self.context) if self.hop < self.horizon else np.zeros(self.cache.dim, np.float32)
        hop = np.zeros(self.horizon, np.float32)
        if self.hop < self.horizon:
            hop[self.hop] = 1.0
        return np.concatenate([emb, hop, [self.spent / self.cost_unit]]).astype(np.float32)

    def _log_router(self) -> None:
        """The router read the context once per hop (new tokens only, as with a KV cache): a 'router' entry."""
        fpt = float(getattr(self.cache.encoder, "flops_per_token", 0.0))
        n = len(self.context) + 1  # characters are tokens in the task world, plus <bos>
        new, self._router_tokens = n - self._router_tokens, n
        if fpt > 0:
            self.ledger.add("router", flops=fpt * new, prompt_tokens=new, calls=1, role="router", hop=self.hop)

    def router_cost(self) -> float:
        """FLOPs the router's encoder spent this episode (reported beside the pool cost, not in the reward)."""
        return float(sum(e.flops for e in self.ledger.entries if e.extra.get("role") == "router"))
