"""STEER: confidence-guided step-level routing between a small and a large model (notebook 04).

Notebook 04's sections and where their code lives:

- steps: what ends a step (a line here; a blank line or "Step k:" for chat models) -> `steps`
- confidence before a step: max prob., max logit, neg. entropy, margin; GMM calibration -> `confidence`
- the routing rule and its threshold grid (0 = small-only, 1 = large-only)             -> `routing`
- routed generation: one KV cache per model, hand-overs, FLOPs by model and kind        -> `engine`
- model pairs: the task world's ladder, two Hugging Face LMs sharing a tokenizer        -> `pair`
- two servers / any `nblib.llm` models (step drafts with log-probs)                     -> `text`
- three cost accountings of the same runs (generated-token FLOPs, FLOPs with reads, latency) -> `accounting`
- latency profiles: measured on this CPU, a GPU roofline "as if" bigger models              -> `latency`
- the measured frontier and every baseline (cached), the benchmark's numbers            -> `bench`
- the figures and the threshold slider                                                  -> `panel`
"""
from . import accounting, bench, confidence, engine, latency, pair, panel, routing, steps, text
from .accounting import ACCOUNTINGS, UnknownAccounting
from .bench import READS, Frontier, FrontierConfig, frontier, summary
from .confidence import Calibrator, score_logits
from .engine import ConfidenceDecider, RandomDecider, RoutedRun, Router, RouterConfig, goes_large
from .latency import LatencyProfile, MissingModel
from .pair import TASKWORLD_READ, chat_prompt, hf_router, taskworld_router
from .panel import SteerPanel
from .routing import check_threshold, threshold_grid
from .steps import (BLANK_LINE, NUMBERED, TASKWORLD, DelimiterNeverOccurs, HFVocab, StepFormat, TaskVocab,
                    TokenizerMismatch)
from .text import route_text

__all__ = [
    "accounting", "bench", "confidence", "engine", "latency", "pair", "panel", "routing", "steps", "text",
    "ACCOUNTINGS", "UnknownAccounting", "READS", "LatencyProfile", "MissingModel", "Frontier", "FrontierConfig", "frontier", "summary", "Calibrator", "score_logits", "ConfidenceDecider",
    "RandomDecider", "RoutedRun", "Router", "RouterConfig", "goes_large", "TASKWORLD_READ", "chat_prompt",
    "hf_router", "taskworld_router", "SteerPanel", "check_threshold", "threshold_grid", "BLANK_LINE", "NUMBERED",
    "TASKWORLD", "DelimiterNeverOccurs", "HFVocab", "StepFormat", "TaskVocab", "TokenizerMismatch", "route_text",
]
