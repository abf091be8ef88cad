"""The router: stable-baselines3's PPO on RouteEnv, its learning curve, saving without pickles, evaluation.

`train` runs SB3's PPO (the brief's defaults: lr 3e-4, 2048-step rollouts, minibatch 64, 10 epochs,
GAE 0.95, clip 0.2, entropy 0.01, gamma 1) on copies of the environment that share one StepCache, and
logs every finished episode (the learning curve). `Router.save` writes the policy's state_dict as
safetensors plus a JSON config (never SB3's cloudpickled zip); `Router.load` rebuilds the PPO model with the
same policy_kwargs and hands the tensors to SB3's own `set_parameters`. `evaluate` runs any policy (a
Router, `FixedPolicy`, `SequencePolicy`, or a function obs -> action) over problems, one episode each.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np

from ..taskworld import problems as T
from .env import RouteEnv
from .table import StepCache, model_fingerprint

PPO_DEFAULTS = {"learning_rate": 3e-4, "n_steps": 256, "batch_size": 64, "n_epochs": 10, "gae_lambda": 0.95,
                "clip_range": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "gamma": 1.0}
N_ENVS = 8  # 8 x 256 = 2048 steps per rollout, as in SB3's defaults
NET_ARCH = (64, 64)


class SpacesEnv(gym.Env):
    """An environment with only spaces: what SB3 needs to rebuild a saved policy without the pool."""

    def __init__(self, obs_dim: int, n_actions: int):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(n_actions)

    def reset(self, *, seed=None, options=None):
        """A zero observation."""
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, np.float32), {}

    def step(self, action):
        """Ends at once (never used for training)."""
        return np.zeros(self.observation_space.shape, np.float32), 0.0, True, False, {}


def _learning_curve_callback(log: list):
    from stable_baselines3.common.callbacks import BaseCallback

    class Curve(BaseCallback):
        """Record (timesteps, return, quality, cost) of every finished episode."""

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode_return" in info:
                    log.append((int(self.num_timesteps), float(info["episode_return"]), float(info["quality"]),
                                float(info["cost"])))
            return True

    return Curve()


def _build_ppo(env, net_arch: Sequence[int], seed: int, ppo_kwargs: dict | None = None):
    import torch
    from stable_baselines3 import PPO

    kw = {**PPO_DEFAULTS, **(ppo_kwargs or {})}
    return PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
               policy_kwargs={"net_arch": list(net_arch), "activation_fn": torch.nn.Tanh}, **kw)


def binned_curve(curve: Sequence[Sequence[float]], max_points: int = 400) -> list[list[float]]:
    """The learning curve averaged over consecutive episodes to at most `max_points` rows (what gets saved)."""
    arr = np.asarray(curve, dtype=float)
    if len(arr) <= max_points:
        return arr.round(6).tolist()
    chunks = np.array_split(arr, max_points)
    return [[float(ch[-1, 0])] + [round(float(v), 6) for v in ch[:, 1:].mean(0)] for ch in chunks]


class PolicyMismatch(ValueError):
    """A policy used with a pool or encoder it was not trained on; the message says which and what to do."""


class Router:
    """A trained HierRouter policy (an SB3 PPO model) and the config that made it."""

    def __init__(self, model, config: dict, curve: list | None = None):
        self.model, self.config = model, dict(config)
        self.curve = list(curve or [])

    @property
    def lam(self) -> float:
        """The cost weight it was trained for."""
        return float(self.config["lam"])

    def check_fits(self, cache: StepCache, horizon: int | None = None) -> None:
        """Refuse (PolicyMismatch) a step table whose pool, encoder or observation width is not this policy's.

        A policy's actions are indices into the pool it was trained on and its inputs are that encoder's view:
        on another pool or encoder it would run, silently wrong. Names, order and width are always checked;
        the weights' fingerprints too when the policy recorded them (policies trained from now on do).
        """
        want_pool, have_pool = list(self.config.get("pool", [])), list(cache.names)
        if want_pool != have_pool:
            raise PolicyMismatch(f"this policy was trained on the pool {want_pool} (in that order: its actions are "
                                 f"indices into it) but the step table's pool is {have_pool}; evaluate it on a "
                                 f"step_table(pool={want_pool}), or train a policy for this pool")
        enc = str(getattr(cache.encoder, "name", ""))
        if self.config.get("encoder") not in (None, enc):
            raise PolicyMismatch(f"this policy reads the encoder {self.config['encoder']!r} but the step table uses "
                                 f"{enc!r}; build the table with encoder={self.config['encoder']!r}")
        h = horizon if horizon is not None else self.config.get("horizon")
        if h is not None and "obs_dim" in self.config and cache.dim + int(h) + 1 != int(self.config["obs_dim"]):
            raise PolicyMismatch(f"this policy takes observations of width {self.config['obs_dim']} but this step "
                                 f"table and horizon {h} give {cache.dim + int(h) + 1}")
        fps = self.config.get("pool_weights")
        if fps is not None:
            have = [model_fingerprint(m) for m in cache.pool]
            diff = [n for n, a, b in zip(have_pool, fps, have, strict=True) if a != b]
            if diff:
                raise PolicyMismatch(f"the pool models {diff} have other weights than when this policy was trained "
                                     "(retrained checkpoints?): retrain the policy (python scripts/hierrouter_train.py)")
        efp = self.config.get("encoder_weights")
        if efp is not None and efp != model_fingerprint(cache.encoder):
            raise PolicyMismatch(f"the encoder {enc!r} has other weights than when this policy was trained: "
                                 "retrain the policy (python scripts/hierrouter_train.py)")

    def __call__(self, obs: np.ndarray) -> int:
        """The pool index it picks for this observation (deterministic: the most likely action)."""
        a, _ = self.model.predict(obs, deterministic=True)
        return int(a)

    def probabilities(self, obs: np.ndarray) -> np.ndarray:
        """Its action probabilities for a batch of observations (n, pool size)."""
        import torch

        with torch.no_grad():
            dist = self.model.policy.get_distribution(torch.as_tensor(np.atleast_2d(obs), dtype=torch.float32))
            return dist.distribution.probs.numpy()

    def save(self, folder: Path | str, stem: str) -> tuple[Path, Path]:
        """Write <stem>.safetensors (the policy's state_dict) and <stem>.json (config, curve); no pickles."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sd = {k: v.detach().contiguous().clone() for k, v in self.model.policy.state_dict().items()}
        w, c = folder / f"{stem}.safetensors", folder / f"{stem}.json"
        save_file(sd, str(w), metadata={"format": "pt"})
        c.write_text(json.dumps({**self.config, "curve": binned_curve(self.curve)}) + "\n")
        return w, c

    @classmethod
    def load(cls, weights: Path | str, config: Path | str | None = None) -> "Router":
        """Rebuild a saved policy: PPO with the same policy_kwargs, then SB3's set_parameters(state_dict)."""
        from ..cache import CorruptArtefact, read_json, read_safetensors

        rebuild = "python scripts/hierrouter_train.py"
        weights = Path(weights)
        config = Path(config) if config is not None else weights.with_suffix(".json")
        for p in (weights, config):
            if not p.exists():
                raise FileNotFoundError(f"{p} is missing; rebuild the committed policies with: {rebuild}")
        cfg = read_json(config, rebuild)
        missing = [k for k in ("obs_dim", "pool", "net_arch") if not isinstance(cfg, dict) or k not in cfg]
        if missing:
            raise CorruptArtefact(f"{config} is not a policy config (no {missing}); rebuild it with: {rebuild}")
        curve = cfg.pop("curve", [])
        model = _build_ppo(SpacesEnv(cfg["obs_dim"], len(cfg["pool"])), cfg["net_arch"], cfg.get("seed", 0))
        sd = read_safetensors(weights, rebuild)
        want = {k: tuple(v.shape) for k, v in model.policy.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in sd.items()}
        if want != got:
            raise ValueError(f"{weights} does not fit a policy with obs_dim={cfg['obs_dim']}, net_arch="
                             f"{cfg['net_arch']}, {len(cfg['pool'])} actions (its config {config})")
        model.set_parameters({"policy": sd}, exact_match=False)
        return cls(model, cfg, curve)


def train(problems: Sequence[T.Problem], cache: StepCache, lam: float, horizon: int = 3, timesteps: int = 60_000,
          seed: int = 0, cost_unit: float | None = None, n_envs: int = N_ENVS, net_arch: Sequence[int] = NET_ARCH,
          ppo_kwargs: dict | None = None, show_progress: bool = False) -> Router:
    """Train a PPO router for cost weight `lam` on these problems (PPO runs on the cache's look-ups)."""
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv

    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a whole number >= 1, got {timesteps!r}")
    probe = RouteEnv(problems, cache, lam, horizon, cost_unit)  # checks lam, horizon, problems
    unit = probe.cost_unit
    envs = DummyVecEnv([(lambda k=k: RouteEnv(problems, cache, lam, horizon, unit, seed=seed * 1000 + k))
                        for k in range(n_envs)])
    torch.manual_seed(seed)
    model = _build_ppo(envs, net_arch, seed, ppo_kwargs)
    curve: list = []
    t0, misses0 = time.perf_counter(), cache.misses
    model.learn(total_timesteps=timesteps, callback=_learning_curve_callback(curve), progress_bar=False)
    wall = time.perf_counter() - t0
    cfg = {"lam": probe.lam, "horizon": horizon, "pool": list(cache.names), "encoder": cache.encoder.name,
           "obs_dim": int(probe.observation_space.shape[0]), "net_arch": list(net_arch), "activation": "tanh",
           "ppo": {**PPO_DEFAULTS, **(ppo_kwargs or {}), "n_envs": n_envs}, "timesteps": timesteps, "seed": seed,
           "cost_unit_flops": unit, "train_problems": len(problems), "train_wall_s": round(wall, 2),
           "model_calls_during_training": cache.misses - misses0, "torch_threads": torch.get_num_threads(),
           "loadavg": [round(x, 2) for x in os.getloadavg()]}
    cfg["pool_weights"] = [model_fingerprint(m) for m in cache.pool]     # checked by Router.check_fits
    cfg["encoder_weights"] = model_fingerprint(cache.encoder)
    return Router(model, cfg, curve)


class FixedPolicy:
    """Always the same pool model (the single-model baseline as a policy)."""

    def __init__(self, action: int):
        self.action = int(action)

    def __call__(self, obs) -> int:
        """The fixed action."""
        return self.action


class SequencePolicy:
    """A fixed model per hop (a static pipeline), read from the observation's hop one-hot."""

    def __init__(self, actions: Sequence[int], horizon: int):
        self.actions, self.horizon = [int(a) for a in actions], horizon

    def __call__(self, obs) -> int:
        """The action for the hop the observation is at."""
        hop = int(np.argmax(np.asarray(obs)[-1 - self.horizon:-1]))
        return self.actions[hop]


def evaluate(policy: Callable[[np.ndarray], int], problems: Sequence[T.Problem], cache: StepCache, lam: float,
             horizon: int = 3, cost_unit: float | None = None):
    """One episode per problem: DataFrame of problem, kinds, models, lines, quality, cost (FLOPs), return."""
    import pandas as pd

    if isinstance(policy, Router):
        policy.check_fits(cache, horizon)
    env = RouteEnv(problems, cache, lam, horizon, cost_unit)
    rows = []
    for i, p in enumerate(problems):
        obs, _ = env.reset(options={"problem": i})
        done, ret = False, 0.0
        while not done:
            obs, r, done, _, info = env.step(policy(obs))
            ret += r
        rows.append({"problem": p.text, "kinds": "".join(p.kinds), "models": tuple(info["actions"]),
                     "lines": tuple(info["lines"]), "quality": info["quality"], "cost_flops": info["cost"],
                     "router_flops": env.router_cost(), "return": ret,
                     "calls": sum(e.calls for e in env.ledger.entries if e.extra.get("role") == "step")})
    df = pd.DataFrame(rows)
    df.attrs["cost_unit"] = env.cost_unit
    return df
