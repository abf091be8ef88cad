"""KOALA at laptop scale: initialisation, feature pairs, the three losses, scoring (tiny U-Nets, CPU)."""
import json
import re

import numpy as np
import pytest
import torch

from nblib import koala

SMALL = {**koala.tiny.TINY_CONFIG, "block_out_channels": [8, 16, 16], "cross_attention_dim": 16, "encoder_hid_dim": 24,
         "norm_num_groups": 4, "transformer_layers_per_block": [1, 2, 4]}


def small(recipe: koala.Recipe, seed: int = 0):
    cfg, layout = koala.derive(SMALL, recipe)
    torch.manual_seed(seed)
    return koala.build_unet(cfg, "cpu").eval(), layout


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and do not fight the other jobs for cores)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def teacher():
    return small(koala.Recipe("teacher"))[0]


def inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, 16, 16, generator=g)
    ehs = torch.randn(batch, 5, 24, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    return x, t, ehs


@pytest.mark.parametrize("name", ["BK", "KOALA", "KOALA-nomid", "KOALA-T1"])
def test_init_copies_every_tensor_bit_exactly(teacher, name):
    student, layout = small(koala.tiny.TINY_RECIPES[name], seed=1)
    report = koala.recipes.init_student(student, teacher, layout)
    assert report["mismatched"] == [] and report["missing"] == []
    t = teacher.state_dict()
    for n, v in student.state_dict().items():
        assert torch.equal(v, t[koala.recipes.teacher_source(n, layout)]), n


def test_init_rejects_a_student_that_does_not_fit(teacher):
    other = {**SMALL, "block_out_channels": [8, 16, 24]}
    cfg, layout = koala.derive(other, koala.tiny.TINY_RECIPES["KOALA"])
    student = koala.build_unet(cfg, "cpu")
    with pytest.raises(koala.RecipeError, match="shape mismatches"):
        koala.recipes.init_student(student, teacher, layout)


def test_koala_pairs_use_sa_bottom_and_the_decoder_copy_rule():
    _, layout = small(koala.tiny.TINY_RECIPES["KOALA"])
    pairs = dict(koala.distillation.feature_pairs(layout, koala.tiny.KOALA_FEATURES))
    assert pairs["down_blocks.2.attentions.0.transformer_blocks.1.attn1"] == \
        "down_blocks.2.attentions.0.transformer_blocks.1.attn1"
    assert pairs["up_blocks.0.attentions.1.transformer_blocks.0.attn1"] == \
        "up_blocks.0.attentions.2.transformer_blocks.0.attn1"
    assert pairs["down_blocks.0"] == "down_blocks.0" and pairs["up_blocks.2"] == "up_blocks.2"
    assert not any(k.startswith(("down_blocks.1.", "up_blocks.1")) and k.count(".") == 1 for k in pairs)
    lowest = [v for k, v in pairs.items() if k.startswith("down_blocks.2.attentions")]
    assert [int(v.split("transformer_blocks.")[1].split(".")[0]) for v in lowest] == [0, 1]
    top = koala.Recipe("top", **{f: getattr(koala.tiny.TINY_RECIPES["KOALA"], f) for f in ("drop_down", "drop_up", "depth")},
                   layers="top")
    _, lt = small(top)
    assert dict(koala.distillation.feature_pairs(lt, "sa"))["down_blocks.2.attentions.0.transformer_blocks.0.attn1"].endswith(
        "transformer_blocks.2.attn1")


def test_feature_kinds_and_counts():
    student, layout = small(koala.tiny.TINY_RECIPES["KOALA-nomid"])
    st = koala.recipes.structure(student)          # counted on the built model, not from the layout
    n_layers = st["transformer_layers"]
    assert len(koala.distillation.feature_pairs(layout, "sa", student)) == n_layers
    assert len(koala.distillation.feature_pairs(layout, "ca")) == len(koala.distillation.feature_pairs(layout, "ffn")) == n_layers
    assert len(koala.distillation.feature_pairs(layout, "res")) == st["resnets"]
    assert len(koala.distillation.feature_pairs(layout, "lf")) == 2 * len(SMALL["block_out_channels"])  # each DW, UP
    assert len(koala.distillation.feature_pairs(layout, "sa+ca+sa")) == 2 * n_layers
    assert not any(a.startswith("mid_block") for a, _ in koala.distillation.feature_pairs(layout, "sa+res"))
    with pytest.raises(ValueError, match="unknown feature kind"):
        koala.distillation.feature_pairs(layout, "sa+attention")


@pytest.mark.parametrize("features", ["sa+lf@ends", "ca+ffn", "res+lf"])
def test_losses_vanish_when_the_student_is_the_teacher(teacher, features):
    student, layout = small(koala.Recipe("same"), seed=3)
    koala.recipes.init_student(student, teacher, layout)
    x, t, ehs = inputs()
    pairs = koala.distillation.feature_pairs(layout, features)
    L = koala.distillation.distill_losses(student, teacher, pairs, x, t, ehs, torch.randn_like(x))
    assert L["out_kd"].item() == 0.0 and L["feat_kd"].item() == 0.0 and L["task"].item() > 0


def test_losses_are_positive_for_a_perturbed_student_and_hooks_are_removed(teacher):
    student, layout = small(koala.tiny.TINY_RECIPES["KOALA"])
    koala.recipes.init_student(student, teacher, layout)
    with torch.no_grad():
        student.up_blocks[0].attentions[0].transformer_blocks[0].attn1.to_out[0].weight.add_(0.5)
    x, t, ehs = inputs()
    L = koala.distillation.distill_losses(student, teacher, koala.distillation.feature_pairs(layout, "sa"), x, t, ehs, torch.randn_like(x))
    assert L["feat_kd"].item() > 0 and L["out_kd"].item() > 0
    for m in list(student.modules()) + list(teacher.modules()):
        assert not m._forward_hooks


def test_distill_trains_only_the_student_and_lowers_the_loss(teacher):
    student, layout = small(koala.tiny.TINY_RECIPES["KOALA"], seed=5)  # random init: far from the teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    data = {"train_x": torch.rand(64, 1, 16, 16) * 2 - 1, "train_y": torch.randint(0, 10, (64,))}
    states = torch.randn(len(koala.tiny.captions()), 5, 24)
    cfg = koala.distillation.DistillConfig(features="sa+lf@ends", steps=12, batch=4, lr=3e-3)
    hist = koala.distill(student, teacher, layout, data, states, cfg, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    first, last = np.mean([h["loss"] for h in hist[:3]]), np.mean([h["loss"] for h in hist[-3:]])
    assert last < first
    assert set(hist[0]) == {"task", "out_kd", "feat_kd", "loss"}


def test_loss_weights_are_checked_and_used(teacher):
    with pytest.raises(ValueError, match="all three loss weights are 0"):
        koala.distillation.DistillConfig(w_task=0, w_out=0, w_feat=0)
    with pytest.raises(ValueError, match="w_feat must be >= 0"):
        koala.distillation.DistillConfig(w_feat=-1)
    student, layout = small(koala.tiny.TINY_RECIPES["BK"])
    data = {"train_x": torch.zeros(8, 1, 16, 16), "train_y": torch.zeros(8, dtype=torch.long)}
    states = torch.randn(len(koala.tiny.captions()), 5, 24)
    hist = koala.distill(student, teacher, layout, data, states,
                      koala.distillation.DistillConfig(w_task=0, w_out=1, w_feat=0, steps=1, batch=2), progress=False)
    assert hist[0]["loss"] == pytest.approx(hist[0]["out_kd"]) and hist[0]["feat_kd"] == 0.0


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert koala.metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert koala.metrics.frechet_distance(a, a + np.array([3.0, 0, 0, 0])) == pytest.approx(9.0, rel=1e-6)
    assert koala.metrics.frechet_distance(a, 2 * a) > 1.0
    with pytest.raises(ValueError):
        koala.metrics.frechet_distance(a, a[:, :3])


def test_ascii_digits_become_16x16_images():
    text = "\n" + "\n".join(("B" * 28 if i == 13 else " " * 28) for i in range(28)) + "\n"
    bits = koala.tiny._ascii_to_bits(text)
    assert bits.shape == (28, 28) and bits.sum() == 28 and bits[13].all()
    x = koala.tiny.to_pixels(np.packbits(bits[None], axis=-1))
    assert x.shape == (1, 1, 16, 16) and x.min() == -1 and x.max() == 0.0  # one row: half of a 2x2 cell


def test_sampling_is_seeded_and_shaped(teacher):
    states = torch.randn(len(koala.tiny.captions()), 5, 24)
    caps = torch.tensor([1, 4, 7])
    a = koala.metrics.sample(teacher, caps, states, seed=3, steps=3)
    b = koala.metrics.sample(teacher, caps, states, seed=3, steps=3)
    assert a.shape == (3, 1, 16, 16) and torch.equal(a, b) and a.abs().max() <= 1
    assert not torch.equal(a, koala.metrics.sample(teacher, caps, states, seed=4, steps=3))   # the seed matters


def test_captions_index_digits():
    caps = koala.tiny.captions()
    digits, idx = koala.metrics.eval_captions(20)
    assert caps[0] == "" and all(koala.tiny.WORDS[int(d)] in caps[int(i)] or str(int(d)) in caps[int(i)]
                                 for d, i in zip(digits, idx))


def test_committed_checkpoints_hold_their_trained_weights():
    """Every committed tiny U-Net loads its own file's weights (not the seed-0 init) and matches its record."""
    from safetensors.torch import load_file

    res = json.loads((koala.tiny.DATA_DIR / "results.json").read_text())
    for name in res["eval"]:                        # the teacher and every committed student
        unet, _ = koala.tiny.load_tiny(name)
        fname = "teacher" if name == "teacher" else "student_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        stored = load_file(str(koala.tiny.DATA_DIR / f"{fname}.safetensors"))
        sd = unet.state_dict()
        assert set(sd) == set(stored), name
        assert all(torch.equal(sd[k], stored[k].float()) for k in stored), name
        fresh = koala.tiny.build_tiny(name.split(":")[0])[0]
        assert not torch.equal(fresh.conv_in.weight, unet.conv_in.weight), name   # really loaded, not the init


def test_koala_t1_is_the_cut_that_gets_below_half_the_teachers_flops():
    """Cutting only the deepest stage (KOALA-700M's cut) floors above 0.5x the FLOPs; KOALA-T1 also cuts the 8x8 stacks."""
    cfg = koala.tiny.TINY_CONFIG
    x = {"sample": torch.zeros(2, 1, 16, 16, device="meta"), "timestep": torch.tensor(500, device="meta"),
         "encoder_hidden_states": torch.zeros(2, 12, cfg["encoder_hid_dim"], device="meta")}

    def flops(recipe):
        return koala.unet_flops(koala.build_unet(koala.derive(cfg, recipe)[0], "meta"), x)

    t = flops(koala.Recipe("teacher"))
    deepest_only = koala.koala_recipe(1, drop_mid=True)             # the shallowest deepest stage the teacher allows
    assert flops(deepest_only) / t > 0.5
    assert flops(koala.tiny.TINY_RECIPES["KOALA-T1"]) / t < 0.46
    layout = koala.derive(cfg, koala.tiny.TINY_RECIPES["KOALA-T1"])[1]
    assert layout.mid is None and layout.n_transformer_layers == 6 and layout.n_resnets == 9
    assert {b.depth for st in layout.down[1:] + layout.up[:2] for b in st} == {1}


def test_make_student_from_a_loaded_teacher(teacher):
    student, layout, report = koala.make_student(teacher, koala.tiny.TINY_RECIPES["KOALA-nomid"])
    assert report["matched"] == len(student.state_dict()) and student.mid_block is None
    assert torch.equal(student.conv_in.weight, teacher.conv_in.weight)   # weights copied, not only shapes
    x, t, ehs = inputs()
    with torch.no_grad():
        assert student(x, t, ehs).sample.shape == x.shape


def test_measure_costs_sees_the_student_is_cheaper(teacher):
    student, layout = small(koala.tiny.TINY_RECIPES["KOALA-nomid"])
    states = torch.randn(len(koala.tiny.captions()), 5, 24)
    ct = koala.metrics.measure_costs(teacher, states, steps=2, repeats=1, big_batch=4)
    cs = koala.metrics.measure_costs(student, states, steps=2, repeats=1, big_batch=4)
    assert 0 < cs["flops_per_step"] < ct["flops_per_step"] and cs["params"] < ct["params"]
    assert ct["latency_ms"] > 0 and ct["latency_ms_per_image_b4"] > 0
    assert ct["weights_mb"] == pytest.approx(koala.count_params(teacher) * 4 / 1e6)


def test_interleaved_latency_pairs_every_model_with_the_teacher(teacher):
    student, _ = small(koala.tiny.TINY_RECIPES["KOALA-nomid"])
    states = torch.randn(len(koala.tiny.captions()), 5, 24)
    lat = koala.metrics.interleaved_latency({"teacher": teacher, "student": student}, states, steps=1, repeats=2,
                                            big_batch=2)
    assert lat["teacher"]["latency_ratio_b1"] == 1.0 and lat["teacher"]["latency_ratio_b2_spread"] == 0.0
    lo, hi = lat["student"]["latency_ratio_b1_range"]
    assert 0 < lo <= lat["student"]["latency_ratio_b1"] <= hi
    with pytest.raises(ValueError, match="reference"):
        koala.metrics.interleaved_latency({"student": student}, states, steps=1, repeats=1)


def test_accuracy_intervals_cover_the_estimate_and_shrink_with_n():
    lo, hi = koala.metrics.accuracy_interval(0.9, 100)
    assert lo < 0.9 < hi and hi - lo > 0.05
    lo2, hi2 = koala.metrics.accuracy_interval(0.9, 10_000)
    assert hi2 - lo2 < (hi - lo) / 5
    g_lo, g_hi = koala.metrics.accuracy_gap_interval(0.994, 0.990, 1000)   # 4 images in 1,000: not a difference
    assert g_lo < 0 < g_hi
    g_lo, g_hi = koala.metrics.accuracy_gap_interval(0.99, 0.80, 1000)
    assert g_lo > 0
    with pytest.raises(ValueError):
        koala.metrics.accuracy_interval(1.2, 10)
