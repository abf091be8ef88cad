"""KOALA: derive smaller SDXL-shaped U-Nets by block and transformer-layer removal.

A `Recipe` says which residual(+transformer) blocks to drop in each encoder and
decoder stage, how deep each stage's transformer stacks become, and whether
the mid block goes. `derive` checks the recipe against the teacher's config
(before any tensor exists), returns the student's diffusers config and a
`Layout` that records, for every student block and transformer layer, which
teacher block/layer it comes from. That one map drives everything else:
weight initialisation (`init_student`), the feature-distillation pairs
(`koala.distillation.feature_pairs`) and the instant cost model of the sliders
(`CostTable`).

Stage names follow the paper: DW-1..DW-n (encoder, high to low resolution),
Mid, UP-1..UP-n (decoder, low to high resolution).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import checks

# ----------------------------------------------------------------------------- configs
SDXL_BASE_CONFIG: dict = {
    # stabilityai/stable-diffusion-xl-base-1.0, unet/config.json (fields that change the graph)
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],  # diffusers' historical name: these are head *counts* (head dim 64)
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}

# Ground truth from the brief (anchors_models.md §1.2, §1.9), asserted in tests.
SDXL_PARAMS = 2_567_463_684
KOALA_1B_PARAMS = 1_161_184_324
KOALA_700M_PARAMS = 782_822_724
BK_SDXL_PARAMS = 1_717_277_764

CROSS_ATTN_BLOCKS = {"CrossAttnDownBlock2D", "CrossAttnUpBlock2D"}
LAYER_PICKS = ("bottom", "interleave", "top")


class RecipeError(ValueError):
    """A removal recipe that would not give a working U-Net; the message says what and why."""


# ----------------------------------------------------------------------------- recipe and layout
@dataclass(frozen=True)
class Recipe:
    """Which teacher blocks to remove and how deep each stage's transformer stacks become.

    - `drop_down[s]`: teacher block indices removed from encoder stage s (DW-(s+1)).
    - `drop_up[s]`: teacher block indices removed from decoder stage s (UP-(s+1)).
    - `depth`: (stage, depth) pairs, stage in "DW-2", "Mid", "UP-1", ...: the new
      transformer depth of every kept block of that stage (unlisted: unchanged).
    - `drop_mid`: remove the mid block (KOALA-700M, BK-SDM-Small).
    - `layers`: which teacher layers a shortened stack keeps (and distils from):
      "bottom" (the first ones, KOALA's SA-bottom), "interleave" or "top".
    """

    name: str = "student"
    drop_down: tuple[tuple[int, ...], ...] = ()
    drop_up: tuple[tuple[int, ...], ...] = ()
    depth: tuple[tuple[str, int], ...] = ()
    drop_mid: bool = False
    layers: str = "bottom"

    def with_depth(self, **stage_depths: int) -> "Recipe":
        """Return a copy with some stage depths replaced (keys like DW_3=6, Mid=6, UP_1=6)."""
        d = dict(self.depth)
        d.update({k.replace("_", "-"): v for k, v in stage_depths.items()})
        return Recipe(self.name, self.drop_down, self.drop_up, tuple(sorted(d.items())), self.drop_mid, self.layers)


def bk_recipe(n_stages: int = 3, name: str = "BK") -> Recipe:
    """BK-SDM block removal: keep the first block of every encoder stage, drop the middle decoder block."""
    n_stages = checks.whole("n_stages", n_stages, low=1)
    return Recipe(name, drop_down=((1,),) * n_stages, drop_up=((1,),) * n_stages)


def koala_recipe(lowest_depth: int, drop_mid: bool, n_stages: int = 3, name: str = "KOALA") -> Recipe:
    """KOALA: BK block removal plus shallower transformer stacks at the lowest resolution (DW-n, Mid, UP-1)."""
    lowest_depth = checks.whole("lowest_depth", lowest_depth, low=1)
    n_stages = checks.whole("n_stages", n_stages, low=1)
    if not isinstance(drop_mid, (bool, np.bool_)):
        raise RecipeError(f"drop_mid must be True or False (remove the mid block or not), got {drop_mid!r}")
    drop_mid = bool(drop_mid)
    depth = {f"DW-{n_stages}": lowest_depth, "UP-1": lowest_depth}
    if not drop_mid:
        depth["Mid"] = lowest_depth
    base = bk_recipe(n_stages, name)
    return Recipe(name, base.drop_down, base.drop_up, tuple(sorted(depth.items())), drop_mid)


SDXL_RECIPES: dict[str, Recipe] = {
    "SDXL-Base": Recipe("SDXL-Base"),
    "BK-SDXL": bk_recipe(name="BK-SDXL"),
    "KOALA-1B": koala_recipe(6, drop_mid=False, name="KOALA-1B"),
    "KOALA-700M": koala_recipe(5, drop_mid=True, name="KOALA-700M"),
}


@dataclass(frozen=True)
class BlockPlan:
    """One student block: the teacher block it comes from and the teacher layers its stack keeps."""

    teacher_block: int
    layers: tuple[int, ...]  # teacher transformer-layer indices, in student order; () = no transformer

    @property
    def depth(self) -> int:
        """Number of transformer layers in this block's stack."""
        return len(self.layers)


@dataclass(frozen=True)
class Layout:
    """A student U-Net expressed as a map onto its teacher (the result of `derive`)."""

    down: tuple[tuple[BlockPlan, ...], ...]  # per encoder stage
    up: tuple[tuple[BlockPlan, ...], ...]  # per decoder stage
    mid: BlockPlan | None  # None: no mid block
    teacher_down_blocks: tuple[int, ...]
    teacher_up_blocks: tuple[int, ...]
    teacher_mid: bool

    def summary(self) -> dict:
        """Per-stage block count and transformer depths, e.g. {'DW-3': '1R x T6', 'Mid': 'R-T6-R'}."""
        out = {}
        for s, blocks in enumerate(self.down):
            out[f"DW-{s + 1}"] = _stage_text(blocks)
        out["Mid"] = "none" if self.mid is None else (f"R-T{self.mid.depth}-R" if self.mid.depth else "R-R")
        for s, blocks in enumerate(self.up):
            out[f"UP-{s + 1}"] = _stage_text(blocks)
        return out

    @property
    def n_transformer_layers(self) -> int:
        """Total transformer layers in the student."""
        return sum(b.depth for st in self.down + self.up for b in st) + (self.mid.depth if self.mid else 0)

    @property
    def n_resnets(self) -> int:
        """Total residual blocks in the student (the mid block has two)."""
        return sum(len(st) for st in self.down + self.up) + (2 if self.mid else 0)


def _stage_text(blocks: tuple[BlockPlan, ...]) -> str:
    depths = {b.depth for b in blocks}
    d = depths.pop() if len(depths) == 1 else "/".join(str(b.depth) for b in blocks)
    return f"{len(blocks)}R" + (f" x T{d}" if d else "")


def _as_list(v: Any, n: int) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v] * n


def teacher_depths(config: dict) -> tuple[list[int], int | None, list[int]]:
    """Transformer depth per encoder stage, of the mid block, per decoder stage (0 = no transformer)."""
    n = len(config["block_out_channels"])
    def uniform(v, where):
        if isinstance(v, (list, tuple)):
            if len(set(v)) != 1:
                raise RecipeError(f"{where} has per-block transformer depths {list(v)}; a teacher needs one "
                                  "depth per stage")
            return v[0]
        return v

    tl = [uniform(v, f"DW-{s + 1}") for s, v in enumerate(_as_list(config.get("transformer_layers_per_block", 1), n))]
    rev = config.get("reverse_transformer_layers_per_block")
    rl = [uniform(v, f"UP-{s + 1}") for s, v in enumerate(rev)] if rev else tl[::-1]
    down = [tl[s] if config["down_block_types"][s] in CROSS_ATTN_BLOCKS else 0 for s in range(n)]
    up = [rl[s] if config["up_block_types"][s] in CROSS_ATTN_BLOCKS else 0 for s in range(n)]
    mid_type = config.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    mid_depth = config.get("_mid_depth") or tl[-1]
    mid = None if mid_type is None else (mid_depth if mid_type == "UNetMidBlock2DCrossAttn" else 0)
    return down, mid, up


def pick_layers(teacher_depth: int, depth: int, how: str = "bottom") -> tuple[int, ...]:
    """Teacher layer indices a depth-`depth` student stack keeps: bottom, interleave or top."""
    if not isinstance(how, str) or how not in LAYER_PICKS:
        raise RecipeError(f"layers must be one of {LAYER_PICKS}, got {how!r}")
    teacher_depth = checks.whole("teacher_depth", teacher_depth, low=0)   # 0: a stage without transformers
    depth = checks.whole("depth", depth, low=0, high=teacher_depth)
    if depth == teacher_depth:
        return tuple(range(depth))
    if how == "bottom":
        return tuple(range(depth))
    if how == "top":
        return tuple(range(teacher_depth - depth, teacher_depth))
    if depth == 1:
        return (0,)
    return tuple(round(i * (teacher_depth - 1) / (depth - 1)) for i in range(depth))


_STAGE_RE = re.compile(r"^(DW|UP)-(\d+)$|^Mid$")


def derive(teacher_config: dict, recipe: Recipe) -> tuple[dict, Layout]:
    """Check `recipe` against the teacher config and return (student diffusers config, Layout).

    Pure arithmetic on the config: nothing is allocated, so a broken recipe fails
    here with a message before any model is built.
    """
    cfg = teacher_config
    n = len(cfg["block_out_channels"])
    lpb = _as_list(cfg.get("layers_per_block", 2), n)
    t_down, t_mid, t_up = teacher_depths(cfg)
    n_up = [lpb[n - 1 - s] + 1 for s in range(n)]

    def drops(spec, kind, sizes):
        spec = tuple(spec)
        if len(spec) > n:
            raise RecipeError(f"drop_{kind} lists {len(spec)} stages but the U-Net has {n}")
        spec = spec + ((),) * (n - len(spec))
        out = []
        for s, blocks in enumerate(spec):
            blocks = tuple(blocks)
            stage = f"{'DW' if kind == 'down' else 'UP'}-{s + 1}"
            bad = [b for b in blocks if not isinstance(b, int) or not 0 <= b < sizes[s]]
            if bad:
                raise RecipeError(f"{stage} has blocks 0..{sizes[s] - 1}; cannot remove {bad}")
            kept = tuple(b for b in range(sizes[s]) if b not in blocks)
            if not kept:
                raise RecipeError(f"the recipe removes every block of {stage}; a stage needs at least one "
                                  "residual block (removing a whole resolution level is a different U-Net)")
            out.append(kept)
        return out

    keep_down = drops(recipe.drop_down, "down", lpb)
    keep_up = drops(recipe.drop_up, "up", n_up)
    # Skip connections: encoder stage s pushes one skip per block plus one for its downsampler
    # (or conv_in for DW-1's predecessor); the mirrored decoder stage pops one per block.
    for s in range(n):
        enc = n - 1 - s
        if len(keep_up[s]) != len(keep_down[enc]) + 1:
            raise RecipeError(
                f"mismatched skip connections: UP-{s + 1} keeps {len(keep_up[s])} blocks but its mirror DW-{enc + 1} "
                f"keeps {len(keep_down[enc])}; a decoder stage needs exactly one block more than its encoder stage "
                f"(one per skip: each encoder block, plus the {'downsampler' if enc else 'conv_in'} output before it)")
        last_teacher = n_up[s] - 1
        if keep_up[s][-1] != last_teacher:
            raise RecipeError(
                f"UP-{s + 1} must keep its last block ({last_teacher}): it is the one that reads the "
                f"{'downsampler' if enc else 'conv_in'} skip, whose channel count no other block fits")

    depth = dict(recipe.depth)
    for k, v in depth.items():
        if not _STAGE_RE.match(k):
            raise RecipeError(f"unknown stage {k!r} in depth; use DW-1..DW-{n}, Mid, UP-1..UP-{n}")
        if not isinstance(v, int) or isinstance(v, bool):
            raise RecipeError(f"depth of {k} must be an integer, got {v!r}")

    def stage_depth(key: str, teacher_d: int) -> int:
        if key not in depth:
            return teacher_d
        d = depth[key]
        if teacher_d == 0:
            raise RecipeError(f"{key} has no transformer in the teacher; its depth cannot be set")
        if not 1 <= d <= teacher_d:
            raise RecipeError(f"depth of {key} must be between 1 and the teacher's {teacher_d} "
                              f"(a removal recipe cannot add layers), got {d}")
        return d

    for k in depth:
        m = _STAGE_RE.match(k)
        if m.group(1) and int(m.group(2)) > n:
            raise RecipeError(f"unknown stage {k!r}: the U-Net has {n} stages")
    if "Mid" in depth and (recipe.drop_mid or t_mid is None):
        raise RecipeError("the recipe sets a Mid depth but the student has no mid block")
    if recipe.drop_mid and t_mid is None:
        raise RecipeError("the teacher has no mid block to drop")

    down = []
    for s in range(n):
        d = stage_depth(f"DW-{s + 1}", t_down[s])
        down.append(tuple(BlockPlan(b, pick_layers(t_down[s], d, recipe.layers)) for b in keep_down[s]))
    up = []
    for s in range(n):
        d = stage_depth(f"UP-{s + 1}", t_up[s])
        up.append(tuple(BlockPlan(b, pick_layers(t_up[s], d, recipe.layers)) for b in keep_up[s]))
    mid = None
    if t_mid is not None and not recipe.drop_mid:
        d = stage_depth("Mid", t_mid)
        mid = BlockPlan(0, pick_layers(t_mid, d, recipe.layers))
    layout = Layout(tuple(down), tuple(up), mid, tuple(lpb), tuple(n_up), t_mid is not None)
    return student_config(cfg, layout), layout


def student_config(teacher_config: dict, layout: Layout) -> dict:
    """The diffusers config of the student described by `layout` (everything else as the teacher)."""
    cfg = copy.deepcopy(dict(teacher_config))
    n = len(layout.down)
    cfg["layers_per_block"] = [len(st) for st in layout.down]
    # diffusers wants nested per-block depths once stacks differ; a DownBlock2D ignores its entry
    cfg["transformer_layers_per_block"] = [[max(b.depth, 1) for b in st] for st in layout.down]
    cfg["reverse_transformer_layers_per_block"] = [[max(b.depth, 1) for b in st] for st in layout.up]
    if layout.mid is None:
        cfg["mid_block_type"] = None
    cfg["_mid_depth"] = layout.mid.depth if layout.mid else None
    assert len(cfg["layers_per_block"]) == n
    return cfg


def build_unet(config: dict, device: str | torch.device = "meta", dtype: torch.dtype = torch.float32):
    """Build a diffusers UNet2DConditionModel from a (teacher or student) config; meta = no memory."""
    from diffusers import UNet2DConditionModel
    from diffusers.models.unets.unet_2d_blocks import get_mid_block

    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    mid_depth = config.get("_mid_depth")
    with torch.device(device):
        unet = UNet2DConditionModel(**cfg)
        n = len(cfg["block_out_channels"])
        first = cfg["transformer_layers_per_block"][-1]
        first = first[0] if isinstance(first, (list, tuple)) else first
        if unet.mid_block is not None and mid_depth is not None and mid_depth != first:
            # diffusers gives the mid block the depth of DW-n's first block; rebuild it at its own depth
            heads = _as_list(cfg.get("attention_head_dim", 8), n)[-1]
            cross = cfg["cross_attention_dim"]
            unet.mid_block = get_mid_block(
                cfg["mid_block_type"], temb_channels=unet.time_embedding.linear_2.out_features,
                in_channels=cfg["block_out_channels"][-1], resnet_eps=cfg.get("norm_eps", 1e-5),
                resnet_act_fn=cfg.get("act_fn", "silu"), resnet_groups=cfg.get("norm_num_groups", 32),
                output_scale_factor=1, transformer_layers_per_block=mid_depth, num_attention_heads=heads,
                cross_attention_dim=cross[-1] if isinstance(cross, (list, tuple)) else cross,
                dual_cross_attention=False, use_linear_projection=cfg.get("use_linear_projection", False),
                mid_block_only_cross_attention=None, upcast_attention=False, resnet_time_scale_shift="default",
                attention_type="default", resnet_skip_time_act=False, cross_attention_norm=None,
                attention_head_dim=heads, dropout=0.0)
    return unet if dtype == torch.float32 else unet.to(dtype)


def count_params(model: torch.nn.Module) -> int:
    """Parameter count (works on meta tensors)."""
    return sum(p.numel() for p in model.parameters())


def structure(model: torch.nn.Module) -> dict:
    """Counts of transformer layers and resnets in a diffusers U-Net, and whether it has a mid block."""
    names = [n for n, _ in model.named_modules()]
    return {
        "transformer_layers": sum(bool(re.search(r"transformer_blocks\.\d+$", n)) for n in names),
        "resnets": sum(bool(re.search(r"resnets\.\d+$", n)) for n in names),
        "has_mid": getattr(model, "mid_block", None) is not None,
    }


# ----------------------------------------------------------------------------- name map
_DOWN = re.compile(r"^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)(\..*)?$")
_UP = re.compile(r"^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)(\..*)?$")
_MID = re.compile(r"^mid_block\.(.*)$")
_TB = re.compile(r"^\.transformer_blocks\.(\d+)(\..*)?$")


def teacher_source(name: str, layout: Layout) -> str | None:
    """Return the teacher module/tensor name a student module/tensor name is copied from (None: no source)."""
    for pat, stages, prefix in ((_DOWN, layout.down, "down_blocks"), (_UP, layout.up, "up_blocks")):
        m = pat.match(name)
        if m:
            s, kind, b, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4) or ""
            if s >= len(stages) or b >= len(stages[s]):
                return None
            plan = stages[s][b]
            if kind == "attentions":
                rest = _map_layer(rest, plan)
                if rest is None:
                    return None
            return f"{prefix}.{s}.{kind}.{plan.teacher_block}{rest}"
    m = _MID.match(name)
    if m:
        if layout.mid is None:
            return None
        rest = m.group(1)
        mm = re.match(r"^(attentions\.0)(\..*)$", rest)
        if mm:
            tail = _map_layer(mm.group(2), layout.mid)
            return None if tail is None else f"mid_block.{mm.group(1)}{tail}"
        return name
    return name


def _map_layer(rest: str, plan: BlockPlan) -> str | None:
    m = _TB.match(rest)
    if not m:
        return rest
    layer = int(m.group(1))
    if layer >= plan.depth:
        return None
    return f".transformer_blocks.{plan.layers[layer]}{m.group(2) or ''}"


def check_mapping(student: torch.nn.Module, teacher: torch.nn.Module, layout: Layout) -> dict:
    """Compare every student tensor with its teacher source: counts of matches, shape mismatches, missing."""
    t = dict(teacher.state_dict())
    out = {"tensors": 0, "matched": 0, "mismatched": [], "missing": []}
    for name, tensor in student.state_dict().items():
        out["tensors"] += 1
        src = teacher_source(name, layout)
        if src is None or src not in t:
            out["missing"].append((name, src))
        elif tuple(t[src].shape) != tuple(tensor.shape):
            out["mismatched"].append((name, src, tuple(tensor.shape), tuple(t[src].shape)))
        else:
            out["matched"] += 1
    return out


def init_student(student: torch.nn.Module, teacher: torch.nn.Module, layout: Layout, strict: bool = True) -> dict:
    """Copy teacher weights into the student block by block (KOALA/BK-SDM rule); return the mapping report."""
    report = check_mapping(student, teacher, layout)
    if strict and (report["mismatched"] or report["missing"]):
        first = (report["mismatched"] + report["missing"])[0]
        raise RecipeError(f"{len(report['mismatched'])} shape mismatches and {len(report['missing'])} tensors "
                          f"without a teacher source; first: {first}")
    t = dict(teacher.state_dict())
    with torch.no_grad():
        for name, tensor in student.state_dict().items():
            src = teacher_source(name, layout)
            if src in t and tuple(t[src].shape) == tuple(tensor.shape):
                tensor.copy_(t[src])
    return report




def make_student(teacher: torch.nn.Module, recipe: Recipe, device: str | torch.device | None = None):
    """Derive, build and initialise a student from a loaded teacher U-Net (e.g. real SDXL weights on a GPU).

    Returns (student, layout, report); the student has the teacher's dtype and device.
    """
    cfg, layout = derive(dict(teacher.config), recipe)
    p = next(teacher.parameters())
    student = build_unet(cfg, device or p.device, p.dtype)
    report = init_student(student, teacher, layout)
    return student, layout, report
