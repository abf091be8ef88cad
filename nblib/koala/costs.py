"""KOALA's cost model at SDXL scale: FLOPs of one U-Net step on the meta device, and per-unit cost tables."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from .recipes import (SDXL_BASE_CONFIG, SDXL_RECIPES, BlockPlan, Layout, Recipe, build_unet, count_params, derive,
                      structure)

def sdxl_inputs(config: dict, batch: int = 1, resolution: int = 1024, text_tokens: int = 77,
                device: str | torch.device = "meta") -> dict:
    """Dummy forward inputs for an SDXL-config U-Net at an image resolution (latent = resolution / 8)."""
    lat = resolution // 8
    kw = dict(device=device)
    inputs = {
        "sample": torch.zeros(batch, config["in_channels"], lat, lat, **kw),
        "timestep": torch.tensor(999, **kw),
        "encoder_hidden_states": torch.zeros(batch, text_tokens,
                                             config.get("encoder_hid_dim") or config["cross_attention_dim"], **kw),
    }
    if config.get("addition_embed_type") == "text_time":
        pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
        inputs["added_cond_kwargs"] = {"text_embeds": torch.zeros(batch, pooled, **kw),
                                       "time_ids": torch.zeros(batch, 6, **kw)}
    return inputs


def unet_flops(unet: torch.nn.Module, inputs: dict, by_module: bool = False):
    """FLOPs of one U-Net forward (one denoising step) counted by torch's FlopCounterMode.

    Works on the meta device (shapes only). With by_module=True also returns
    {module name: FLOPs} for every submodule (names relative to the U-Net).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from ..cost import sdpa_flop_mapping

    with FlopCounterMode(display=False, custom_mapping=sdpa_flop_mapping()) as counter, torch.no_grad():
        unet(**inputs)
    total = int(counter.get_total_flops())
    if not by_module:
        return total
    root = type(unet).__name__
    per = {}
    for key, ops in counter.get_flop_counts().items():
        if key == root:
            per[""] = int(sum(ops.values()))
        elif key.startswith(root + "."):
            per[key[len(root) + 1:]] = int(sum(ops.values()))
    return total, per


_UNIT_RE = re.compile(r"^(down_blocks|up_blocks)\.\d+\.(resnets|attentions)\.\d+$|^mid_block$"
                      r"|^(down_blocks|up_blocks)\.\d+\.attentions\.\d+\.transformer_blocks\.\d+$"
                      r"|^mid_block\.attentions\.0\.transformer_blocks\.\d+$")


@dataclass
class CostTable:
    """Per-unit parameters and FLOPs of a teacher, so any recipe's cost is a sum (the sliders' model).

    A unit is a whole residual block, a whole transformer stack, one transformer
    layer or the mid block. A student keeps a subset of the teacher's units with
    unchanged shapes, so its cost is the teacher's minus the removed units.
    """

    config: dict
    params_total: int
    flops_total: int
    params: dict = field(repr=False)  # unit name -> parameter count (including children)
    flops: dict = field(repr=False)  # unit name -> FLOPs (including children)
    bytes_per_param: int = 2  # fp16 weights, as the SDXL pipelines run

    @classmethod
    def measure(cls, config: dict, resolution: int = 1024, text_tokens: int = 77) -> "CostTable":
        """Build the teacher on the meta device and count params and FLOPs per unit."""
        unet = build_unet(config, "meta")
        total, per = unet_flops(unet, sdxl_inputs(config, 1, resolution, text_tokens), by_module=True)
        params = {}
        for name, mod in unet.named_modules():
            if _UNIT_RE.match(name):
                params[name] = count_params(mod)
        flops = {k: per.get(k, 0) for k in params}
        return cls(config, count_params(unet), total, params, flops)

    def removed_units(self, layout: Layout) -> list[str]:
        """Teacher units a student does not keep (outermost first; nested units not repeated)."""
        out = []
        for prefix, stages, sizes in (("down_blocks", layout.down, layout.teacher_down_blocks),
                                      ("up_blocks", layout.up, layout.teacher_up_blocks)):
            for s, plans in enumerate(stages):
                kept = {p.teacher_block: p for p in plans}
                for b in range(sizes[s]):
                    if b not in kept:
                        out.append(f"{prefix}.{s}.resnets.{b}")
                        if f"{prefix}.{s}.attentions.{b}" in self.params:
                            out.append(f"{prefix}.{s}.attentions.{b}")
                    else:
                        out += self._dropped_layers(f"{prefix}.{s}.attentions.{b}", kept[b])
        if layout.teacher_mid:
            if layout.mid is None:
                out.append("mid_block")
            else:
                out += self._dropped_layers("mid_block.attentions.0", layout.mid)
        return out

    def _dropped_layers(self, stack: str, plan: BlockPlan) -> list[str]:
        n = sum(1 for k in self.params if k.startswith(stack + ".transformer_blocks."))
        return [f"{stack}.transformer_blocks.{l}" for l in range(n) if l not in plan.layers]

    def predict(self, layout: Layout) -> dict:
        """Parameters, FLOPs per step and fp16 weight memory of the student described by `layout`."""
        removed = self.removed_units(layout)
        p = self.params_total - sum(self.params[u] for u in removed)
        f = self.flops_total - sum(self.flops[u] for u in removed)
        return {"params": p, "flops": f, "weights_gb": p * self.bytes_per_param / 1e9,
                "transformer_layers": layout.n_transformer_layers, "resnets": layout.n_resnets}

    def stage_costs(self, layout: Layout | None = None) -> dict:
        """Params and FLOPs per stage (DW-1.., Mid, UP-1..) of the teacher, or of the student in `layout`."""
        n = len(self.config["block_out_channels"])
        order = [f"DW-{i + 1}" for i in range(n)] + ["Mid"] + [f"UP-{i + 1}" for i in range(n)]
        out = {k: {"params": 0, "flops": 0} for k in order}
        top = [u for u in self.params if u.count(".") == 3 or u == "mid_block"]  # whole blocks, not layers
        removed = set(self.removed_units(layout)) if layout is not None else set()
        for u in top + sorted(removed):
            if u in removed and u in top:
                continue  # a removed whole block contributes nothing
            sign = -1 if u in removed else 1
            out[_stage_of(u)]["params"] += sign * self.params[u]
            out[_stage_of(u)]["flops"] += sign * self.flops[u]
        return out

    def where_params_live(self) -> "Any":
        """Teacher parameters per stage and kind (resnets / transformers) and the rest (embeddings, samplers)."""
        import pandas as pd

        rows = []
        n = len(self.config["block_out_channels"])
        for name, count in self.params.items():
            if ".transformer_blocks." in name:
                continue
            m = re.match(r"^(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions)\.\d+$", name)
            if m:
                stage = ("DW-" if m.group(1) == "down_blocks" else "UP-") + str(int(m.group(2)) + 1)
                rows.append((stage, "transformers" if m.group(3) == "attentions" else "resnets", count))
        if "mid_block" in self.params:
            att = sum(v for k, v in self.params.items() if k == "mid_block.attentions.0")
            att = att or sum(v for k, v in self.params.items() if k.startswith("mid_block.attentions.0.transformer_blocks"))
            rows.append(("Mid", "transformers", att))
            rows.append(("Mid", "resnets", self.params["mid_block"] - att))
        df = pd.DataFrame(rows, columns=["stage", "kind", "params"])
        table = df.pivot_table(index="stage", columns="kind", values="params", aggfunc="sum", fill_value=0)
        order = [f"DW-{i + 1}" for i in range(n)] + ["Mid"] + [f"UP-{i + 1}" for i in range(n)]
        table = table.reindex([o for o in order if o in table.index])
        table["total"] = table["resnets"] + table["transformers"]
        other = self.params_total - int(table[["resnets", "transformers"]].to_numpy().sum())
        return table, other


def _stage_of(unit: str) -> str:
    if unit.startswith("mid_block"):
        return "Mid"
    kind, s = unit.split(".")[:2]
    return ("DW-" if kind == "down_blocks" else "UP-") + str(int(s) + 1)


def sdxl_table(resolution: int = 1024) -> CostTable:
    """The SDXL-Base cost table at `resolution` (cached in memory; about a second on the meta device)."""
    key = resolution
    if key not in _SDXL_TABLES:
        _SDXL_TABLES[key] = CostTable.measure(SDXL_BASE_CONFIG, resolution)
    return _SDXL_TABLES[key]


_SDXL_TABLES: dict = {}


def sdxl_summary(resolution: int = 1024, recipes: dict[str, Recipe] | None = None) -> "Any":
    """Params, transformer layers, resnets and FLOPs per step of SDXL and its derived U-Nets (built on meta)."""
    import pandas as pd

    rows = []
    for name, recipe in (recipes or SDXL_RECIPES).items():
        cfg, layout = derive(SDXL_BASE_CONFIG, recipe)
        unet = build_unet(cfg, "meta")
        st = structure(unet)
        flops = unet_flops(unet, sdxl_inputs(cfg, 1, resolution))
        rows.append({"U-Net": name, "params": count_params(unet), "transformer layers": st["transformer_layers"],
                     "resnets": st["resnets"], "GFLOPs / step": flops / 1e9, **layout.summary()})
    df = pd.DataFrame(rows).set_index("U-Net")
    base = df["params"].iloc[0]
    df["params vs SDXL"] = df["params"] / base
    df["FLOPs vs SDXL"] = df["GFLOPs / step"] / df["GFLOPs / step"].iloc[0]
    return df
