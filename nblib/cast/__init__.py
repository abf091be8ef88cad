"""CAST (notebook 07): speculative decoding with cost-aware dynamic draft trees.

Notebook 07's sections and where their code lives:

- the target and its trained drafts: token-level and feature-level -> `draft` (Draft, load), `eagle` (FeatureDraft)
- one decoding step: draft a tree, verify it in one pass, accept -> `tree` (generate, FixedTree, chain)
- sampling at temperature > 0: recursive rejection sampling     -> `sampling` (Sampling), `tree` (verify_sampled)
- lossless against `model.generate`                              -> `tree` (greedy_reference, plain_greedy)
- measured latency tables and CAST's tree-shape policy           -> `policy` (CastPolicy, cached_profile)
- every method side by side, with transformers' assisted peer    -> `bench` (compare, table, sweep)
- the tree drawing, latency curves and the tree-shape slider     -> `panel` (draw_tree, TreeSweepPanel)

The notebook imports this one package: `from nblib import cast` -> `cast.generate(...)`, `cast.CastPolicy`,
`cast.bench.compare(...)`.
"""
from . import bench, draft, eagle, panel, policy, sampling, tree
from .policy import CastPolicy, LatencyProfile, cached_profile, linear_profile
from .sampling import Sampling
from .tree import FixedTree, NoDraft, SpecResult, Tree, chain, generate, greedy_reference, plain_greedy

__all__ = ["bench", "draft", "eagle", "panel", "policy", "sampling", "tree", "Sampling", "CastPolicy", "LatencyProfile", "cached_profile",
           "linear_profile", "FixedTree", "NoDraft", "SpecResult", "Tree", "chain", "generate", "greedy_reference",
           "plain_greedy"]
