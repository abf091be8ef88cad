"""The slider-panel base (nblib.panel.SliderPanel) and the one policy every notebook's panel follows."""
from __future__ import annotations

import base64
import math

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from nblib import cast, koala, measuring  # noqa: E402
from nblib.panel import SliderPanel, css_hook  # noqa: E402


class Toy(SliderPanel):
    """Two sliders; the state is their sum; draws are counted."""

    prefix = "nbxx"
    figsize = (3, 2)
    dpi = 50

    def __init__(self, blit: bool = False):
        import ipywidgets as W

        self.blit = blit
        self.draws = 0
        super().__init__({"a": W.IntSlider(value=1, min=0, max=10),
                          "b_value": W.SelectionSlider(options=[1, 2, 4], value=1),
                          "flag": W.Checkbox(value=False)})

    def build(self, fig):
        ax = fig.subplots()
        (self.line,) = ax.plot([0, 1], [0, 0])
        ax.set_ylim(0, 20)
        return [self.line]

    def compute(self, a, b_value, flag):
        return {"sum": a + b_value + (100 if flag else 0)}

    def draw(self, st):
        self.draws += 1
        self.line.set_ydata([0, min(st["sum"], 20)])
        return f"sum {st['sum']}"


def synthetic_sweep() -> pd.DataFrame:
    """A measured-looking (batch x seq) sweep table, without measuring anything."""
    rows = [dict(batch=b, seq=s, prefill_ms=0.1 * b * s, prefill_spread_ms=0.01, decode_ms=20.0 + b,
                 decode_spread_ms=0.1, prefill_flops=1e9 * b * s, decode_flops=1e9 * b, peak_mb=100.0 + b * s / 10,
                 work_mb=b * s / 20, kv_mb_per_token=0.05 * b) for b in (1, 2, 4) for s in (8, 32)]
    return pd.DataFrame(rows)


def tree_rows() -> list[dict]:
    """A precomputed CAST sweep: plain greedy (depth 0) and 8 tree shapes, for batch 1 and 2."""
    shapes = [(0, 0, 0)] + [(d, k, m) for d in (2, 4) for k in (2, 4) for m in (4, 12)]
    return [{"batch": b, "depth": d, "top_k": k, "budget": m, "tokens_per_s": 1.0 + b + d + k + m / 10,
             "accepted": 1 + d / 10} for b in (1, 2) for d, k, m in shapes]


SMALL = {**koala.tiny.TINY_CONFIG, "block_out_channels": [8, 16, 16], "cross_attention_dim": 16, "encoder_hid_dim": 24,
         "norm_num_groups": 4, "transformer_layers_per_block": [1, 2, 4]}


@pytest.fixture(scope="module")
def panels():
    """One panel of each notebook: 00 (CostPanel), 01 (RecipePanel), 07 (TreeSweepPanel)."""
    return {"nb00": measuring.CostPanel(synthetic_sweep(), new_tokens=8),
            "nb01": koala.panel.RecipePanel(koala.CostTable.measure(SMALL, resolution=128)),
            "nb07": cast.panel.TreeSweepPanel(tree_rows())}


@pytest.mark.parametrize("blit", [False, True])
def test_state_is_pure_and_callable_with_plain_values(blit):
    p = Toy(blit)
    before = (p.values(), p.redraws, p.draws, p.label.value, p.image.value)
    assert p.state(a=3, b_value=4, flag=True) == {"sum": 107}
    assert p.compute(a=3, b_value=4, flag=False) == {"sum": 7}
    assert p.state(a=5) == {"sum": 6}           # missing names: the sliders' current values
    assert p.state() == {"sum": 2}
    assert (p.values(), p.redraws, p.draws, p.label.value, p.image.value) == before
    with pytest.raises(TypeError, match="unknown slider"):
        p.state(c=1)


@pytest.mark.parametrize("blit", [False, True])
def test_set_moves_several_sliders_and_redraws_once(blit):
    p = Toy(blit)
    assert p.draws == p.redraws == 1 and p.label.value == "sum 2"
    png0 = p.image.value
    p.set(a=7, b_value=4, flag=False)
    assert p.draws == p.redraws == 2
    assert p.values() == {"a": 7, "b_value": 4, "flag": False}
    assert p.label.value == "sum 11" and p.image.value != png0 and bytes(p.image.value).startswith(b"\x89PNG")
    p.set()                                     # an explicit set redraws even when nothing changed
    assert p.draws == 3
    p.sliders["a"].value = 2                    # a slider moved by the reader: one redraw per change
    assert p.draws == 4 and p.label.value == "sum 6"
    with pytest.raises(TypeError, match="unknown slider"):
        p.set(nope=1)
    assert p.draws == 4


def test_css_hooks_timing_and_display():
    p = Toy()
    assert css_hook("nb07", "top_k") == "nb07-top-k" and css_hook("nb01", "depth_DW_3") == "nb01-depth-dw-3"
    assert "nbxx-a" in p.sliders["a"]._dom_classes
    assert "nbxx-b-value" in p.sliders["b_value"]._dom_classes
    assert "nbxx-flag" in p.sliders["flag"]._dom_classes
    assert "nbxx-readout" in p.label._dom_classes and "nbxx-plot" in p.image._dom_classes
    assert "nbxx-panel" in p.widget._dom_classes
    assert p.last_update_ms > 0 and math.isfinite(p.last_update_ms)


def _png_size(data: bytes) -> tuple[int, int]:
    """Decode PNG bytes (PIL) and return the image's (width, height)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()                                   # a truncated or corrupt PNG raises here
        return im.size


@pytest.mark.parametrize("blit", [False, True])
def test_display_bundle_carries_the_widget_view_and_the_current_figure(blit):
    from IPython.core.formatters import DisplayFormatter

    p = Toy(blit)
    p.set(a=7, b_value=4)
    data, _ = DisplayFormatter().format(p)          # what IPython publishes for `p` as a cell's last value
    assert set(data) >= {"application/vnd.jupyter.widget-view+json", "image/png", "text/plain"}
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == p.widget.model_id
    png = base64.b64decode(data["image/png"], validate=True)
    assert png == bytes(p.image.value)              # the figure as shown now, not a fresh render
    assert _png_size(png) == (p.figsize[0] * p.dpi, p.figsize[1] * p.dpi)
    assert data["text/plain"] == "Toy: sum 11"      # the readout, not "VBox(children=...)"
    p.set(a=0)
    data2, _ = DisplayFormatter().format(p)
    assert data2["image/png"] != data["image/png"] and data2["text/plain"] == "Toy: sum 4"
    only = p._repr_mimebundle_(include={"image/png"})
    assert set(only) == {"image/png"}
    assert "image/png" not in p._repr_mimebundle_(exclude={"image/png"})


def test_readout_text_drops_markup():
    p = Toy()
    p.label.value = "<b>depth</b> 4 &amp; top-k 2<br>budget&nbsp;12 <span style='x'>ms</span>"
    assert p.readout_text() == "depth 4 & top-k 2\nbudget 12 ms"


def test_every_panel_follows_one_policy(panels):
    for prefix, p in panels.items():
        assert isinstance(p, SliderPanel) and p.prefix == prefix
        bundle = p._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle, prefix
        assert min(_png_size(base64.b64decode(bundle["image/png"]))) > 0, prefix
        assert p.redraws >= 1 and p.last_update_ms > 0
        assert f"{prefix}-readout" in p.label._dom_classes and f"{prefix}-plot" in p.image._dom_classes
        sliders = [w for w in p.sliders.values() if w.has_trait("continuous_update")]
        assert sliders, prefix
        assert {w.continuous_update for w in sliders} == {SliderPanel.continuous_update}
        for name, w in p.sliders.items():
            assert css_hook(prefix, name) in w._dom_classes
    assert not SliderPanel.continuous_update     # the documented choice: redraw when a drag ends


def test_every_panel_state_takes_plain_values(panels):
    p00, p01, p07 = panels["nb00"], panels["nb01"], panels["nb07"]
    n0 = p00.redraws
    assert p00.state(batch=4, seq=32, new=64) == measuring.predict(p00.sweep, 4, 32, 64)
    assert p00.redraws == n0 and p00.values() == {"batch": 1, "seq": 8, "new": 8}
    st = p07.state(depth=4, top_k=2, budget=12, batch=2)
    assert (st["batch"], st["depth"], st["top_k"], st["budget"]) == (2, 4, 2, 12)
    rec = koala.tiny.TINY_RECIPES["KOALA-nomid"]
    _, layout = koala.derive(SMALL, rec)
    assert p01.state(**p01.recipe_values(rec))["params"] == p01.table.predict(layout)["params"]
    assert p01.recipe() == p01.recipe_of(**p01.values())


def test_koala_panel_blits_and_set_recipe_redraws_once(panels):
    p = panels["nb01"]
    assert p.blit and p.background is not None and all(a.get_animated() for a in p.animated)
    n, png = p.redraws, p.image.value
    p.set_recipe(koala.tiny.TINY_RECIPES["KOALA-nomid"])
    assert p.redraws == n + 1 and p.image.value != png and "Mid none" in p.label.value


# ----------------------------------------------------------------------------- issue 23: values checked, not clamped
def test_set_and_state_refuse_values_the_sliders_cannot_take_and_name_the_slider():
    import numpy as np

    p = Toy()
    before, n = p.values(), p.redraws
    with pytest.raises(ValueError, match=r"slider 'b_value' takes one of \[1, 2, 4\], got 3"):
        p.set(b_value=3)                                  # was ipywidgets' "Invalid selection: value not found"
    with pytest.raises(ValueError, match=r"slider 'a' must be a whole number in \[0, 10\], got 11"):
        p.set(a=11)                                       # was clamped to 10 silently
    with pytest.raises(ValueError, match=r"slider 'a' must be a whole number"):
        p.state(a=float("nan"))
    with pytest.raises(ValueError, match=r"slider 'flag' takes True or False"):
        p.set(flag="yes")
    with pytest.raises(ValueError, match=r"slider 'b_value'"):
        p.set(a=3, b_value=5)                             # one bad value: nothing moves, nothing redraws
    assert p.values() == before and p.redraws == n
    p.set(a=np.int64(3), b_value=np.int64(4))             # numpy scalars are values like any other
    assert p.state()["sum"] == 7 and p.redraws == n + 1
    p.set(a=4)                                            # the panel still works after refused calls
    assert p.label.value == "sum 8"


def test_a_float_slider_refuses_nan_inf_and_out_of_range():
    import ipywidgets as W

    class F(Toy):
        def __init__(self):
            self.blit, self.draws = False, 0
            SliderPanel.__init__(self, {"a": W.FloatSlider(value=0.5, min=0.0, max=1.0),
                                        "b_value": W.FloatLogSlider(value=10, base=10, min=0, max=2),
                                        "flag": W.Checkbox(value=False)})

    p = F()
    for bad in (float("nan"), float("inf"), 1.5, -0.1):
        with pytest.raises(ValueError, match=r"slider 'a' must be a number in \[0.0, 1.0\]"):
            p.set(a=bad)
    with pytest.raises(ValueError, match=r"slider 'b_value' must be a number in \[1.0, 100.0\]"):
        p.state(b_value=1000)
    p.set(a=0.25, b_value=50)
    assert p.state()["sum"] == pytest.approx(50.25)
