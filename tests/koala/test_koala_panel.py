"""Notebook 01's recipe panel (nblib.koala.panel): sliders derive a recipe and sum the cost table; blitted redraws."""
import matplotlib

matplotlib.use("Agg")

from nblib import koala  # noqa: E402

SMALL = {**koala.tiny.TINY_CONFIG, "block_out_channels": [8, 16, 16], "cross_attention_dim": 16, "encoder_hid_dim": 24,
         "norm_num_groups": 4, "transformer_layers_per_block": [1, 2, 4]}


def test_recipe_panel_moves_fast_and_matches_the_table():
    table = koala.CostTable.measure(SMALL, resolution=128)
    panel = koala.panel.RecipePanel(table)
    panel.depth["DW-3"].value = 2
    panel.depth["UP-1"].value = 2
    panel.depth["Mid"].value = 0
    for b in panel.blocks.values():
        b.value = True
    _, layout = koala.derive(SMALL, koala.tiny.TINY_RECIPES["KOALA-nomid"])
    assert panel.state()["params"] == table.predict(layout)["params"] == \
        koala.count_params(koala.build_unet(koala.derive(SMALL, koala.tiny.TINY_RECIPES["KOALA-nomid"])[0], "meta"))
    assert "Mid none" in panel.label.value and panel.image.value[:4] == b"\x89PNG"
    assert panel.last_update_ms < 1000  # generous: shared CI cores; ~40 ms on an idle laptop


def test_recipe_panel_sliders_set_recipe_and_css_hooks():
    table = koala.CostTable.measure(SMALL, resolution=128)
    rec = koala.tiny.TINY_RECIPES["KOALA-nomid"]
    panel = koala.panel.RecipePanel(table, recipe=rec)
    assert set(panel.sliders) == {"depth_dw_2", "depth_dw_3", "depth_mid", "depth_up_1", "depth_up_2",
                                  "drop_1", "drop_2", "drop_3"}
    for name, w in panel.sliders.items():
        assert f"nb01-{name.replace('_', '-')}" in w._dom_classes
    assert panel.sliders["depth_dw_3"] is panel.depth["DW-3"] and panel.sliders["drop_1"] is panel.blocks[0]
    assert "nb01-readout" in panel.label._dom_classes and "nb01-plot" in panel.image._dom_classes
    _, layout = koala.derive(SMALL, rec)
    assert panel.state()["params"] == table.predict(layout)["params"]
    assert panel.recipe_of(**panel.recipe_values(rec)) == panel.recipe()
    n = panel.redraws
    panel.set_recipe(koala.Recipe("teacher"))
    assert panel.redraws == n + 1 and panel.state()["params_ratio"] == 1.0
    assert "Mid none" not in panel.label.value
