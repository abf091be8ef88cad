"""KOALA (notebook 01): distil an SDXL-shaped U-Net into a smaller one, with self-attention feature KD.

Notebook 01's sections and where their code lives:

- where SDXL's parameters live; KOALA-1B / 700M recipes; broken recipes -> `recipes` (Recipe, derive, build_unet)
- FLOPs per step on the meta device; the per-unit cost table           -> `costs` (CostTable, sdxl_table)
- the recipe slider panel and the U diagram                            -> `panel` (RecipePanel, draw_unet)
- the tiny SDXL-shaped U-Net, its MNIST data, captions, checkpoints    -> `tiny`
- distillation: feature pairs, hooks, the three losses                 -> `distillation` (distill)
- samples, caption accuracy, Frechet distance, measured cost           -> `metrics`; latency against FLOPs, computed
                                                                          (latency_vs_flops, latency_vs_flops_sentences)
- the cost-quality figure (FLOPs and latency vs accuracy and FD)       -> `panel` (cost_quality_figure)

The notebook imports this one package: `from nblib import koala` -> `koala.derive(...)`,
`koala.panel.RecipePanel(...)`, `koala.tiny.load_tiny("teacher")`, `koala.metrics.evaluate(...)`.
"""
from . import costs, distillation, metrics, panel, recipes, tiny
from .costs import CostTable, sdxl_summary, sdxl_table, unet_flops
from .distillation import DistillConfig, distill
from .recipes import (SDXL_BASE_CONFIG, SDXL_RECIPES, Layout, Recipe, RecipeError, bk_recipe, build_unet,
                      check_mapping, count_params, derive, koala_recipe, make_student)

__all__ = ["costs", "distillation", "distill", "DistillConfig", "metrics", "panel", "recipes", "tiny", "CostTable", "sdxl_summary", "sdxl_table",
           "unet_flops", "SDXL_BASE_CONFIG", "SDXL_RECIPES", "Layout", "Recipe", "RecipeError", "bk_recipe",
           "build_unet", "check_mapping", "count_params", "derive", "koala_recipe", "make_student"]
