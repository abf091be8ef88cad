"""The task world: seeded multi-step arithmetic problems, exact checkers, and the small models trained on them.

Notebook 00b's sections and where their code lives:

- problems and checkers (``47,+8,*2``; one step per line; ``#answer``) -> `problems`
- the models: char tokenizer, Llama shapes, committed checkpoints     -> `models`
- batched greedy generation with log-probs and FLOPs                   -> `generation`
- traces: solutions cut into checked steps, cached                     -> `traces`
- accuracy by steps, calibration (AUROC), specialists, BIG-bench       -> `metrics`
- how the checkpoints were trained (scripts/train_taskworld.py)        -> `training`

STEER, HierRouter and C3PO import this package: `taskworld.load_model("large")`,
`taskworld.trace("tiny", "test", n=400)`, `taskworld.problems.problems("test", 50)`.
"""
from . import generation, metrics, models, problems, traces, training
from .generation import Generation, generate, solve
from .metrics import (accuracy, accuracy_by_steps, calibration_table, external_accuracy, flops_per_token,
                      specialist_matrix, step_accuracy, step_auroc)
from .models import (LADDER, SPECIALISTS, CheckpointMismatch, UnknownModel, available_models, decode, encode,
                     load_model, model_info, prompt_of)
from .problems import MalformedProblem, Problem, ProblemsExhausted, TaskConfig, load_bigbench, parse_problem
from .traces import ProblemTrace, StepTrace, trace, trace_frame

__all__ = [
    "generation", "metrics", "models", "problems", "traces", "training",
    "Generation", "generate", "solve", "accuracy", "accuracy_by_steps", "calibration_table", "external_accuracy", "flops_per_token",
    "specialist_matrix", "step_accuracy", "step_auroc", "LADDER", "SPECIALISTS", "CheckpointMismatch",
    "UnknownModel", "available_models", "decode", "encode", "load_model", "model_info", "prompt_of",
    "MalformedProblem", "Problem", "ProblemsExhausted", "TaskConfig", "load_bigbench", "parse_problem", "ProblemTrace", "StepTrace",
    "trace", "trace_frame",
]
