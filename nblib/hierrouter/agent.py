"""The router: stable-baselines3's PPO on RouteEnv, its learning curve, saving without pickles, evaluation.

The router's input (`Features`): the encoder's view of the context projected to a few dimensions (PCA,
whitened, fitted on the training problems' contexts), the hop index, the hops left and the cost spent;
SB3's `VecNormalize` then normalises it (running mean and variance, clipped at 10). `train` runs SB3's PPO
on copies of the environment that share one step table (no model runs while it trains) and logs every
finished episode (the learning curve). `Router.save` writes the policy's state_dict, the projection and the
normalisation statistics as safetensors plus a JSON config (never SB3's cloudpickled zip); `Router.load`
rebuilds the PPO model with the same policy_kwargs and hands the tensors to SB3's own `set_parameters`.
`evaluate` runs a router over many problems at once (`episodes.walk`, the same rules as RouteEnv).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import gymnasium as gym
import numpy as np

from ..taskworld import problems as T
from .env import RouteEnv
from .episodes import Walk, walk
from .steps import StepCache
from .table import Arrays, check_lam, model_fingerprint

PPO_SETTINGS = {"learning_rate": 1e-3, "n_steps": 256, "batch_size": 256, "n_epochs": 10, "gae_lambda": 0.95,
                "clip_range": 0.2, "ent_coef": 0.01, "vf_coef": 0.5, "gamma": 1.0}
N_ENVS = 8          # 8 x 256 = 2,048 steps per rollout, as in SB3's defaults
NET_ARCH = (64, 64)
N_COMPONENTS = 16   # PCA width of the encoder's view
VECNORMALIZE = {"norm_obs": True, "norm_reward": False, "clip_obs": 10.0, "gamma": 1.0, "epsilon": 1e-8}


class Features:
    """Raw observation (view, hop, hops left, spent) -> the router's input: PCA-whitened view, hop, left, spent."""

    def __init__(self, mean: np.ndarray | None = None, components: np.ndarray | None = None,
                 scale: np.ndarray | None = None, raw_dim: int | None = None):
        self.mean, self.components, self.scale = mean, components, scale
        self.raw_dim = int(raw_dim if raw_dim is not None else len(mean))

    @classmethod
    def fit(cls, views: np.ndarray, n_components: int | None = N_COMPONENTS, seed: int = 0) -> "Features":
        """PCA (whitened) of the views of the training contexts; n_components None keeps the view as it is."""
        views = np.asarray(views, dtype=np.float64)
        if n_components is None or n_components >= views.shape[1]:
            return cls(raw_dim=views.shape[1])
        from sklearn.decomposition import PCA

        pca = PCA(n_components=n_components, svd_solver="full", random_state=seed).fit(views)
        return cls(pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
                   np.sqrt(pca.explained_variance_).astype(np.float32) + 1e-6, views.shape[1])

    @property
    def dim(self) -> int:
        """Width of the router's input."""
        return (self.raw_dim if self.components is None else len(self.components)) + 3

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """(n, raw_dim + 3) or (raw_dim + 3,) -> (n, dim) or (dim,)."""
        x = np.atleast_2d(np.asarray(raw, dtype=np.float32))
        view, rest = x[:, :self.raw_dim], x[:, self.raw_dim:]
        if self.components is not None:
            view = (view - self.mean) @ self.components.T / self.scale
        out = np.concatenate([view, rest], axis=1).astype(np.float32)
        return out[0] if np.ndim(raw) == 1 else out

    def tensors(self) -> dict:
        """The projection as named arrays (for safetensors)."""
        if self.components is None:
            return {}
        return {"features.mean": self.mean, "features.components": self.components, "features.scale": self.scale}


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


class FeatureEnv(gym.ObservationWrapper):
    """RouteEnv seen through `Features` (what PPO trains on)."""

    def __init__(self, env: RouteEnv, features: Features):
        super().__init__(env)
        self.features = features
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(features.dim,), dtype=np.float32)

    def observation(self, observation):
        """The router's input for one raw observation."""
        return self.features(observation)


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

    kw = {**PPO_SETTINGS, **(ppo_kwargs or {})}
    return PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
               policy_kwargs={"net_arch": list(net_arch), "activation_fn": torch.nn.Tanh}, **kw)


def binned_curve(curve: Sequence[Sequence[float]], max_points: int = 200) -> list[list[float]]:
    """The learning curve averaged over consecutive episodes to at most `max_points` rows (what gets saved)."""
    arr = np.asarray(curve, dtype=float)
    if len(arr) <= max_points:
        return arr.round(6).tolist()
    chunks = np.array_split(arr, max_points)
    return [[float(ch[-1, 0])] + [round(float(v), 6) for v in ch[:, 1:].mean(0)] for ch in chunks]


class PolicyMismatch(ValueError):
    """A policy used with a pool or encoder it was not trained on; the message says which and what to do."""


class Router:
    """A trained HierRouter policy (an SB3 PPO model), its input projection and normalisation, and its config."""

    def __init__(self, model, config: dict, features: Features, obs_mean: np.ndarray, obs_var: np.ndarray,
                 curve: list | None = None):
        self.model, self.config, self.features = model, dict(config), features
        self.obs_mean, self.obs_var = np.asarray(obs_mean, np.float32), np.asarray(obs_var, np.float32)
        self.curve = list(curve or [])

    @property
    def lam(self) -> float:
        """The cost weight it was trained for."""
        return float(self.config["lam"])

    def check_fits(self, cache: StepCache) -> None:
        """Refuse (PolicyMismatch) a step table whose pool, encoder or view width is not this policy's."""
        want_pool, have_pool = list(self.config.get("pool", [])), list(cache.names)
        if want_pool != have_pool:
            raise PolicyMismatch(f"this policy was trained on the pool {want_pool} (in that order: its actions are "
                                 f"indices into it) but the step table's pool is {have_pool}; evaluate it on a "
                                 f"step_table(pool={want_pool}), or train a policy for this pool")
        enc = str(getattr(cache.encoder, "name", ""))
        if self.config.get("encoder") not in (None, enc):
            raise PolicyMismatch(f"this policy reads the encoder {self.config['encoder']!r} but the step table uses "
                                 f"{enc!r}; build the table with that encoder")
        if cache.dim != self.features.raw_dim:
            raise PolicyMismatch(f"this policy reads views of width {self.features.raw_dim} but this step table's "
                                 f"encoder gives {cache.dim}")
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

    def inputs(self, raw: np.ndarray) -> np.ndarray:
        """Raw observations (n, view + 3) -> the normalised inputs the policy network reads (n, dim)."""
        x = np.atleast_2d(self.features(np.atleast_2d(raw)))
        x = (x - self.obs_mean) / np.sqrt(self.obs_var + VECNORMALIZE["epsilon"])
        return np.clip(x, -VECNORMALIZE["clip_obs"], VECNORMALIZE["clip_obs"]).astype(np.float32)

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """Its action probabilities for a batch of raw observations (n, pool size)."""
        import torch

        with torch.no_grad():
            dist = self.model.policy.get_distribution(torch.as_tensor(self.inputs(raw)))
            return dist.distribution.probs.numpy()

    def act(self, raw: np.ndarray) -> np.ndarray:
        """The pool index it picks for each raw observation (deterministic: the most likely action)."""
        return self.probabilities(raw).argmax(1)

    def __call__(self, obs: np.ndarray) -> int:
        """The pool index it picks for one raw observation."""
        return int(self.act(np.atleast_2d(obs))[0])

    def save(self, folder: Path | str, stem: str) -> tuple[Path, Path]:
        """Write <stem>.safetensors (state_dict, projection, normalisation) and <stem>.json (config, curve)."""
        import torch
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sd = {k: v.detach().contiguous().clone() for k, v in self.model.policy.state_dict().items()}
        extra = {**self.features.tensors(), "vecnormalize.mean": self.obs_mean, "vecnormalize.var": self.obs_var}
        sd.update({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in extra.items()})
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
        missing = [k for k in ("obs_dim", "raw_dim", "pool", "net_arch") if not isinstance(cfg, dict) or k not in cfg]
        if missing:
            raise CorruptArtefact(f"{config} is not a policy config (no {missing}); rebuild it with: {rebuild}")
        curve = cfg.pop("curve", [])
        sd = read_safetensors(weights, rebuild)
        arr = {k: sd.pop(k).numpy() for k in list(sd) if k.startswith(("features.", "vecnormalize."))}
        if "features.mean" in arr:
            feats = Features(arr["features.mean"], arr["features.components"], arr["features.scale"], cfg["raw_dim"])
        else:
            feats = Features(raw_dim=cfg["raw_dim"])
        model = _build_ppo(SpacesEnv(cfg["obs_dim"], len(cfg["pool"])), cfg["net_arch"], cfg.get("seed", 0))
        want = {k: tuple(v.shape) for k, v in model.policy.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in sd.items()}
        if want != got or feats.dim != cfg["obs_dim"] or "vecnormalize.mean" not in arr:
            raise CorruptArtefact(f"{weights} does not fit a policy with obs_dim={cfg['obs_dim']}, net_arch="
                                  f"{cfg['net_arch']}, {len(cfg['pool'])} actions (its config {config}); rebuild "
                                  f"it with: {rebuild}")
        model.set_parameters({"policy": sd}, exact_match=False)
        return cls(model, cfg, feats, arr["vecnormalize.mean"], arr["vecnormalize.var"], curve)


def train(problems: Sequence[T.Problem], cache: StepCache, lam: float, timesteps: int = 50_000, seed: int = 0,
          cost_unit: float | None = None, features: Features | None = None, net_arch: Sequence[int] = NET_ARCH,
          ppo_kwargs: dict | None = None, horizon: int | None = None) -> Router:
    """Train a PPO router for cost weight `lam` on table look-ups (the models run only on a table miss)."""
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from .table import arrays

    lam = check_lam(lam)
    if features is None:
        A = arrays(cache, problems)
        features = Features.fit(A.view[np.arange(A.horizon) < A.n_steps[:, None]], seed=seed)
    probe = RouteEnv(problems, cache, lam, horizon, cost_unit)
    unit = probe.cost_unit
    misses0 = cache.misses

    def make(i):
        return lambda: FeatureEnv(RouteEnv(problems, cache, lam, probe.horizon, unit, seed=seed * 1000 + i), features)

    venv = VecNormalize(DummyVecEnv([make(i) for i in range(N_ENVS)]), **VECNORMALIZE)
    venv.seed(seed)
    model = _build_ppo(venv, net_arch, seed, ppo_kwargs)
    curve: list = []
    t0, load0 = time.perf_counter(), os.getloadavg()
    model.learn(total_timesteps=int(timesteps), callback=_learning_curve_callback(curve))
    wall = time.perf_counter() - t0
    config = {"lam": lam, "obs_dim": features.dim, "raw_dim": features.raw_dim,
              "n_components": None if features.components is None else int(len(features.components)),
              "pool": list(cache.names), "pool_weights": [model_fingerprint(m) for m in cache.pool],
              "encoder": getattr(cache.encoder, "name", None), "encoder_weights": model_fingerprint(cache.encoder),
              "encoder_flops_per_token": float(getattr(cache.encoder, "flops_per_token", 0.0)),
              "net_arch": list(net_arch), "activation": "tanh", "ppo": {**PPO_SETTINGS, **(ppo_kwargs or {})},
              "n_envs": N_ENVS, "vecnormalize": VECNORMALIZE, "seed": seed, "timesteps": int(timesteps),
              "horizon": probe.horizon, "cost_unit_flops": unit, "cost": "pool calls + the router's encoder, FLOPs",
              "train_problems": len(problems), "train_wall_s": round(wall, 1),
              "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
              "torch_threads": torch.get_num_threads(), "model_calls_during_training": cache.misses - misses0}
    return Router(model, config, features, venv.obs_rms.mean, venv.obs_rms.var, curve)


def run(router: Router, A: Arrays, cost_unit: float) -> Walk:
    """The router's episodes on every problem of the arrays (batched; the same rules and costs as RouteEnv)."""
    def choose(k, rows, spent):
        raw = np.concatenate([A.view[rows, k], np.full((len(rows), 1), k), (A.n_steps[rows] - k)[:, None],
                              spent[:, None]], axis=1)
        return router.act(raw)

    return walk(A, choose, reads_context=True, cost_unit=cost_unit)


def evaluate(router: Router, A: Arrays, lam: float, cost_unit: float):
    """One episode per problem: a table (problem, kinds, models per hop, quality, FLOPs, router FLOPs, return)."""
    import pandas as pd

    lam = check_lam(lam)
    w = run(router, A, cost_unit)
    names = np.array(A.names)
    df = pd.DataFrame({"problem": [p.text for p in A.problems], "kinds": ["".join(p.kinds) for p in A.problems],
                       "n_steps": A.n_steps,
                       "models": [tuple(names[a[a >= 0]]) for a in w.actions], "quality": w.quality,
                       "cost_flops": w.flops, "pool_flops": w.pool_flops, "router_flops": w.router_flops,
                       "return": w.quality - lam * w.flops / cost_unit, "hops": w.hops})
    df.attrs["cost_unit"] = cost_unit
    return df
