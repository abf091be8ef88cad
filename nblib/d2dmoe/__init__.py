"""D2DMoE (notebook 02): dense transformer FFNs converted into dynamic-k mixtures of experts.

Notebook 02's sections and where their code lives:

- the data: BIG-bench multiemo reviews (committed subset)                     -> `data`
- finding FFNs, their weights, switching to ReLU (step 0)                      -> `ffn`
- activation-sparsity fine-tuning (L1 / square Hoyer), zero fractions (step 2) -> `sparsity`
- compact fine-tuning deltas (LoRA-style, merged at load)                     -> `lora`
- balanced k-means split of neurons into experts (step 3)                     -> `experts`
- routers, dynamic-k and static top-k rules, the MoE layer and its CPU path   -> `moe`
- converting a model, one rule for every layer, router weights                -> `convert`
- the recipes behind the committed artefacts (fine-tuning, router training)  -> `finetune`
- the base models and loading the committed artefacts                         -> `models`
- accuracy, experts per token and FFN FLOPs under a rule                      -> `evaluate`
- sweeps over tau and k, FFN wall time against dense                          -> `bench`
- the tau / expert-size slider panel and the figures                           -> `panel`
- the fair dynamic-k vs top-k comparison (oracle, padding, per-layer tau)      -> `fair`
- the compiled grouped MoE FFN for one request (torch fallback)               -> `kernel`
- one request's latency, dense vs the kernel, over tau and k                  -> `latency`
- SmolLM2: oracle experts on a SiLU decoder, step one's fine-tune, roofline   -> `decoder`

`d2dmoe.load_moe("minilm", 96)` gives the sparsified MiniLM classifier with 96 experts per FFN
and its trained routers; `d2dmoe.set_rule(model, "dynk", tau=0.2)` picks the rule.
"""
from . import (bench, convert, data, decoder, evaluate, experts, fair, ffn, finetune, kernel, latency, lora, models,
               moe, panel, sparsity)
from .convert import moe_layers, recording, set_rule
from .data import LABELS, load_multiemo
from .evaluate import RuleResult, evaluate_classifier, evaluate_taskworld, token_experts
from .experts import Experts, balanced_kmeans, check_expert_count, split_experts
from .ffn import FFNWeights, UnrecognisedModel, ffn_sites, ffn_weights, relufy
from .models import EncoderClassifier, load_base, load_moe
from .moe import MoEFFN, Router, check_tau, dynamic_k_mask, tau_from_code, topk_mask
from .sparsity import activation_stats, capture_activations, square_hoyer

convert_model = convert.convert

__all__ = [
    "bench", "convert", "data", "decoder", "evaluate", "experts", "fair", "ffn", "finetune", "kernel", "latency",
    "lora", "models", "moe", "panel",
    "sparsity", "moe_layers", "recording", "set_rule", "LABELS", "load_multiemo", "RuleResult",
    "evaluate_classifier", "evaluate_taskworld", "token_experts", "Experts", "balanced_kmeans",
    "check_expert_count", "split_experts", "FFNWeights", "UnrecognisedModel", "ffn_sites", "ffn_weights",
    "relufy", "EncoderClassifier", "load_base", "load_moe", "MoEFFN", "Router", "check_tau", "dynamic_k_mask",
    "tau_from_code", "topk_mask", "activation_stats", "capture_activations", "square_hoyer", "convert_model",
]
