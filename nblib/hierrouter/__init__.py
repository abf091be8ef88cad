"""HierRouter (notebook 05): a PPO agent routes each hop of a multi-step problem to one model of a pool.

Notebook 05's sections and where their code lives:

- the pool: specialists, the ladder's tiny and large, any nblib.llm model -> `pool` (make_pool, LLMStepModel)
- what the router sees of the context (hidden states, MiniLM, hand ablation) -> `encoders` (make_encoder)
- model outputs cached per (context, model); the precomputed step table -> `table` (StepCache, step_table)
- the environment, hop by hop, with its ledger                            -> `env` (RouteEnv, sequence_cost)
- PPO (stable-baselines3), the learning curve, saved policies, evaluation -> `agent` (train, Router, evaluate)
- baselines: each model alone, random, greedy by kind, best fixed, oracle -> `baselines`
- every method side by side over the lambda sweep; the frontier           -> `bench` (compare, summary)
- the hop-by-hop view, the heat map, the lambda slider                    -> `panel` (RouterPanel)

The notebook imports this one package: `from nblib import hierrouter` -> `hierrouter.step_table(...)`,
`hierrouter.RouteEnv`, `hierrouter.train(...)`, `hierrouter.bench.compare(...)`.
"""
from . import agent, baselines, bench, encoders, env, panel, pool, synthetic, table
from .agent import FixedPolicy, PolicyMismatch, Router, SequencePolicy, evaluate, train
from .encoders import HiddenStateEncoder, KindFeatures, MiniLMEncoder, make_encoder
from .env import RouteEnv, episode_cost, reference_cost, sequence_cost
from .pool import (DEFAULT_POOL, LLMStepModel, ScriptedStepModel, StepOutput, TaskStepModel, UnknownPoolModel,
                   make_pool)
from .panel import RouterPanel
from .table import StepCache, quality, step_table

__all__ = ["agent", "baselines", "bench", "encoders", "env", "panel", "pool", "synthetic", "table", "RouterPanel", "FixedPolicy", "PolicyMismatch", "Router", "SequencePolicy", "evaluate",
           "train", "HiddenStateEncoder", "KindFeatures", "MiniLMEncoder", "make_encoder", "RouteEnv",
           "episode_cost", "reference_cost", "sequence_cost", "DEFAULT_POOL", "LLMStepModel", "ScriptedStepModel",
           "StepOutput", "TaskStepModel", "UnknownPoolModel", "make_pool", "StepCache", "quality", "step_table"]
