"""The MoE layer, the dynamic-k and top-k rules, the grouped CPU path and its FLOPs (nblib.d2dmoe.moe)."""
import pytest
import torch

from nblib import d2dmoe as D
from nblib.cost import measure_flops


def test_every_expert_on_equals_the_dense_model(tiny, run):
    _, model, ids = tiny
    ref = run(model, ids)
    layers = D.convert_model(model, 8)
    for impl in ("grouped", "masked"):
        D.set_rule(model, "all", impl=impl)
        torch.testing.assert_close(run(model, ids), ref, atol=1e-5, rtol=1e-5)
    D.set_rule(layers, "dynk", tau=0.0, impl="grouped")  # tau = 0 with a router: also every expert
    torch.testing.assert_close(run(model, ids), ref, atol=1e-5, rtol=1e-5)


def test_oracle_routing_with_true_norms_is_exact_for_relu(tiny, run):
    _, model, ids = tiny
    ref = run(model, ids)
    layers = D.convert_model(model, 16)
    D.set_rule(layers, "oracle", tau=1e-12, impl="grouped")  # keeps exactly the experts with non-zero norm
    with D.recording(layers):
        out = run(model, ids)
        skipped = sum(int((torch.cat(m.counts) < m.n_experts).sum()) for m in layers)
    assert skipped > 0  # some experts really were skipped, and the output is still exact
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_experts_with_all_zero_activations_have_norm_exactly_zero(make_bert):
    layer = D.convert_model(make_bert(), 16)[0]
    x = torch.randn(50, 32)
    h = layer.expert_hidden(x)
    norms = layer.expert_norms(x)
    dead = (h == 0).all(-1)
    assert dead.any() and (norms[dead] == 0).all() and (norms[~dead] > 0).all()


def test_dynamic_k_rule_endpoints_monotone_and_never_empty():
    pred = torch.rand(200, 12, generator=torch.Generator().manual_seed(0))
    assert D.dynamic_k_mask(pred, 0.0).all()  # tau = 0 runs every expert
    one = D.dynamic_k_mask(pred, 1.0)
    assert (one.sum(-1) == 1).all() and (one.float().argmax(-1) == pred.argmax(-1)).all()
    prev = None
    for tau in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
        m = D.dynamic_k_mask(pred, tau)
        assert (m.sum(-1) >= 1).all()
        if prev is not None:
            assert (m <= prev).all()  # the executed set shrinks as tau grows
        prev = m
    assert D.dynamic_k_mask(pred, 0.5).sum(-1).unique().numel() > 1  # k varies per token
    zeros = torch.zeros(3, 5)
    assert (D.dynamic_k_mask(zeros, 1.0).sum(-1) >= 1).all()  # at least one expert even when all predict 0
    assert (D.dynamic_k_mask(torch.full((2, 4), float("nan")), 0.5).sum(-1) >= 1).all()


def test_threshold_convention_of_the_official_code():
    assert D.tau_from_code(0.9) == pytest.approx(0.1)  # official max * (1 - tau_code)
    pred = torch.tensor([[1.0, 0.95, 0.5, 0.05]])
    assert D.dynamic_k_mask(pred, D.tau_from_code(0.9)).tolist() == [[True, True, True, False]]


@pytest.mark.parametrize("tau", [-0.1, 1.5, float("nan"), "0.5", True])
def test_tau_outside_zero_one_is_one_clear_error(tau, make_bert):
    with pytest.raises(ValueError, match=r"tau must be a number in \[0, 1\]"):
        D.dynamic_k_mask(torch.rand(2, 3), tau)
    layers = D.convert_model(make_bert(layers=1), 4)
    with pytest.raises(ValueError, match=r"tau must be a number in \[0, 1\]"):
        D.set_rule(layers, "dynk", tau=tau)


def test_topk_runs_exactly_k_and_rejects_bad_k():
    pred = torch.rand(10, 8)
    assert (D.topk_mask(pred, 3).sum(-1) == 3).all()
    with pytest.raises(ValueError, match="k must be"):
        D.topk_mask(pred, 9)


def test_grouped_path_equals_masked_path(tiny):
    _, model, _ = tiny
    layer = D.convert_model(model, 8)[0]
    x = torch.randn(64, 32)
    for tau in (0.1, 0.5, 1.0):
        mask = D.dynamic_k_mask(layer.router(x), tau)
        torch.testing.assert_close(layer.run_grouped(x, mask), layer.run_masked(x, mask), atol=1e-5, rtol=1e-5)


def test_flops_counted_by_nblib_cost_fall_monotonically_with_tau(tiny):
    _, model, _ = tiny
    layer = D.convert_model(model, 16)[0]
    torch.nn.init.normal_(layer.router.fc2.weight, std=1.0)  # spread the predictions out
    x = torch.randn(128, 32, generator=torch.Generator().manual_seed(0))
    measured = []
    for tau in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        layer.set_rule("dynk", tau=tau, impl="grouped")
        executed = layer.routing_mask(x).sum(-1)
        _, flops = measure_flops(layer, x)
        assert flops == layer.flops(executed, x.shape[0])  # the formula is what the grouped path does
        measured.append(flops)
    assert all(a >= b for a, b in zip(measured, measured[1:], strict=False)) and measured[0] > measured[-1]
    router = layer.router.flops_per_token() * x.shape[0]
    assert measured[0] == layer.dense_flops() * x.shape[0] + router  # tau = 0: every expert plus the router
    assert measured[-1] == layer.expert_flops() * x.shape[0] + router  # tau = 1: one expert per token


def test_expert_flops_match_the_brief():
    # ViT-B: size-6 expert at d = 768 -> 18,432 FLOPs per token; the dense 3072-wide FFN 9,437,184
    from nblib.d2dmoe.experts import Experts

    w = torch.zeros(512, 6, 768)
    ex = Experts(w, torch.zeros(512, 6), None, w.clone(), torch.zeros(768), "relu", torch.arange(3072).view(512, 6))
    layer = D.MoEFFN(ex)
    assert layer.expert_flops() == 18_432 and layer.dense_flops() == 9_437_184


def test_converting_twice_is_a_clear_error(make_bert):
    m = make_bert(layers=1)
    D.convert_model(m, 4)
    with pytest.raises(ValueError, match="already converted"):
        D.convert_model(m, 4)


# ----------------------------------------------------------------------------- issue 23
def test_set_rule_refuses_a_parameter_its_mode_does_not_use_and_needs_its_own(make_bert):
    layers = D.convert_model(make_bert(layers=1), 4)
    D.set_rule(layers, "topk", k=2)
    with pytest.raises(ValueError, match=r"tau=0.5 has no effect with mode 'topk'"):
        D.set_rule(layers, "topk", tau=0.5)                 # was: silently ran the previous k
    assert layers[0].k == 2 and layers[0].mode == "topk"    # a refused call changes nothing
    D.set_rule(layers, "dynk", tau=0.3)
    with pytest.raises(ValueError, match=r"mode 'dynk' needs tau"):
        D.set_rule(layers, "dynk")                          # was: silently kept tau=0.3
    with pytest.raises(ValueError, match=r"k=3 has no effect with mode 'all'"):
        D.set_rule(layers, "all", k=3)
    with pytest.raises(ValueError, match=r"mode must be one of \['all', 'dynk', 'topk', 'oracle', 'oracle_topk'\]"):
        D.set_rule(layers, "top-k", k=2)


def test_numpy_scalars_are_accepted_as_k_and_tau(make_bert):
    import numpy as np

    layers = D.convert_model(make_bert(layers=1), 4)
    D.set_rule(layers, "topk", k=np.int64(3))
    assert layers[0].k == 3 and type(layers[0].k) is int
    D.set_rule(layers, "dynk", tau=np.float32(0.25))
    assert layers[0].tau == pytest.approx(0.25)
    assert (D.topk_mask(torch.rand(5, 4), np.int32(2)).sum(-1) == 2).all()
    with pytest.raises(ValueError, match=r"k must be a whole number in \[1, 4\], got 5"):
        D.set_rule(layers, "topk", k=np.int64(5))


def test_oracle_topk_runs_the_k_experts_with_the_largest_true_norms():
    torch.manual_seed(0)
    from nblib.d2dmoe import MoEFFN, topk_mask
    from nblib.d2dmoe.experts import Experts

    d, E, s = 8, 4, 3
    ex = Experts(w_in=torch.randn(E, s, d), b_in=torch.randn(E, s), w_gate=None, w_out=torch.randn(E, s, d),
                 b_out=torch.randn(d), act="relu", neurons=torch.arange(E * s).reshape(E, s))
    m = MoEFFN(ex)
    x = torch.randn(5, d)
    m.set_rule("oracle_topk", k=2)
    mask = m.routing_mask(x)
    assert mask.sum(-1).tolist() == [2] * 5
    assert torch.equal(mask, topk_mask(m.expert_norms(x), 2))
    m.set_rule("oracle_topk", k=E)
    assert torch.allclose(m(x), m.dense_forward(x), atol=1e-5)   # all experts on = the dense layer
