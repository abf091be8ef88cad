"""HierRouter (notebook 05): a PPO agent routes each hop of a multi-step problem to one model of a pool.

Notebook 05's sections and where their code lives:

- the pool: v2-tiny, the v2 specialists, v2-mid, v2-large, any nblib.llm model  -> `pool` (make_pool, LLMStepModel)
- what the router sees of the context (hidden states, MiniLM, hand ablation)    -> `encoders` (make_encoder)
- model outputs per gold-path (context, model), cached; the arrays             -> `steps` (StepCache), `table`
- the environment, hop by hop, with its ledger (encoder cost included)         -> `env` (RouteEnv)
- many episodes at once, same rules and costs                                  -> `episodes` (walk, usage)
- PPO (stable-baselines3 + VecNormalize), PCA input, saved policies, evaluation -> `agent` (train, Router, evaluate)
- baselines: models alone, mixing line, random, greedy, fixed, logistic, oracle -> `baselines`
- every method side by side over the lambda sweep; frontier metrics; price lens -> `bench` (compare, summary)
- the hop-by-hop view, the heat map, the lambda slider                         -> `panel` (RouterPanel)

The notebook imports this one package: `from nblib import hierrouter` -> `hierrouter.step_table(...)`,
`hierrouter.RouteEnv`, `hierrouter.train(...)`, `hierrouter.bench.compare(...)`.
"""
from . import agent, baselines, bench, encoders, env, episodes, panel, pool, steps, synthetic, table
from .agent import Features, PolicyMismatch, Router, evaluate, train
from .encoders import HiddenStateEncoder, KindFeatures, MiniLMEncoder, make_encoder
from .env import RouteEnv, episode_cost, reference_cost, sequence_cost
from .panel import RouterPanel
from .pool import (DEFAULT_POOL, LLMStepModel, ScriptedStepModel, StepOutput, TaskStepModel, UnknownPoolModel,
                   make_pool)
from .steps import StepCache
from .table import Arrays, arrays, quality, step_table

__all__ = ["agent", "baselines", "bench", "encoders", "env", "episodes", "panel", "pool", "steps", "synthetic",
           "table", "Features", "PolicyMismatch", "Router", "evaluate", "train", "HiddenStateEncoder", "KindFeatures",
           "MiniLMEncoder", "make_encoder", "RouteEnv", "episode_cost", "reference_cost", "sequence_cost",
           "RouterPanel", "DEFAULT_POOL", "LLMStepModel", "ScriptedStepModel", "StepOutput", "TaskStepModel",
           "UnknownPoolModel", "make_pool", "StepCache", "Arrays", "arrays", "quality", "step_table"]
