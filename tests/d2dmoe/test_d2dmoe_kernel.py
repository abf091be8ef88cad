"""The compiled grouped MoE kernel: it equals the torch grouped path (masks given or routed inside it), covers
empty and full selections, and falls back to torch with one clear status line where it cannot run."""
from __future__ import annotations

import pytest
import torch

from nblib.d2dmoe import Experts, MoEFFN, Router
from nblib.d2dmoe import kernel as K

needs_kernel = pytest.mark.skipif(not K.available(), reason="D2DMoE kernel unavailable here: " + K.status())


def random_layer(E=12, s=32, d=64, seed=0, gated=False, act="relu", b_in=True, b_out=True):
    """A MoEFFN with random weights (and a random router) of the given shape."""
    g = torch.Generator().manual_seed(seed)
    ex = Experts(w_in=torch.randn(E, s, d, generator=g) * d ** -0.5,
                 b_in=torch.randn(E, s, generator=g) * 0.1 if b_in else None,
                 w_gate=torch.randn(E, s, d, generator=g) * d ** -0.5 if gated else None,
                 w_out=torch.randn(E, s, d, generator=g) * s ** -0.5,
                 b_out=torch.randn(d, generator=g) if b_out else None, act=act,
                 neurons=torch.arange(E * s).reshape(E, s))
    torch.manual_seed(seed)
    return MoEFFN(ex, Router(d, E, hidden=32))


def close(a, b):
    """Equal up to float32 summation order (1e-4 relative to the output scale)."""
    return torch.allclose(a, b, atol=1e-4 * max(1.0, b.abs().max().item()), rtol=1e-4)


@needs_kernel
@pytest.mark.parametrize("T", [1, 7, 32, 64, 128])
@pytest.mark.parametrize("shape", [(24, 64, 384, True, True), (12, 32, 64, True, False), (7, 13, 40, False, True)])
def test_kernel_equals_the_torch_grouped_path(T, shape):
    """Random inputs and random expert selections (some experts unused, odd sizes, with/without biases)."""
    E, s, d, bi, bo = shape
    layer = random_layer(E, s, d, seed=T, b_in=bi, b_out=bo)
    g = torch.Generator().manual_seed(100 + T)
    x = torch.randn(T, d, generator=g)
    mask = torch.rand(T, E, generator=g) < 0.3
    mask[:, 0] = False                       # no token picks expert 0
    mask[torch.arange(T), torch.randint(0, E, (T,), generator=g)] = True
    with torch.no_grad():
        got = K.grouped_ffn(x, mask, layer.w_in, layer.b_in, layer.w_out, layer.b_out)
        want = layer.run_grouped(x, mask)
    assert close(got, want), (got - want).abs().max()


@needs_kernel
@pytest.mark.parametrize("T", [1, 7, 64])
def test_every_expert_equals_the_dense_ffn_and_one_expert_per_token(T):
    """All experts for every token = dense_forward; one expert per token = that expert alone."""
    layer = random_layer(16, 24, 96, seed=3)
    x = torch.randn(T, 96, generator=torch.Generator().manual_seed(T))
    with torch.no_grad():
        full = torch.ones(T, 16, dtype=torch.bool)
        assert close(K.grouped_ffn(x, full, layer.w_in, layer.b_in, layer.w_out, layer.b_out),
                     layer.dense_forward(x))
        one = torch.zeros(T, 16, dtype=torch.bool)
        one[torch.arange(T), torch.arange(T) % 16] = True
        got = K.grouped_ffn(x, one, layer.w_in, layer.b_in, layer.w_out, layer.b_out)
        e = torch.arange(T) % 16
        h = torch.relu(torch.einsum("td,tsd->ts", x, layer.w_in[e]) + layer.b_in[e])
        want = torch.einsum("ts,tsd->td", h, layer.w_out[e]) + layer.b_out
        assert close(got, want)
        assert close(got, layer.run_grouped(x, one))


@needs_kernel
def test_a_request_where_no_token_picks_anything_but_one_expert_leaves_the_rest_out():
    """Expert contributions are only added for selected experts: the bias plus expert 5 alone."""
    layer = random_layer(8, 16, 32, seed=4)
    x = torch.randn(5, 32, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(5, 8, dtype=torch.bool)
    mask[:, 5] = True
    with torch.no_grad():
        got = K.grouped_ffn(x, mask, layer.w_in, layer.b_in, layer.w_out, layer.b_out)
        want = torch.relu(x @ layer.w_in[5].T + layer.b_in[5]) @ layer.w_out[5] + layer.b_out
    assert close(got, want)


@needs_kernel
@pytest.mark.parametrize("mode,value", [("dynk", 0.0), ("dynk", 0.3), ("dynk", 1.0), ("topk", 1), ("topk", 5)])
@pytest.mark.parametrize("T", [1, 32, 128])
def test_impl_kernel_with_the_router_inside_equals_the_grouped_path(mode, value, T):
    """MoEFFN(impl='kernel') routes in C: the same mask as torch's router (away from ties) and the same output."""
    layer = random_layer(24, 64, 384, seed=T)
    x = torch.randn(T, 384, generator=torch.Generator().manual_seed(T + 1))
    kw = {"tau": value} if mode == "dynk" else {"k": value}
    with torch.no_grad():
        layer.set_rule(mode, **kw, impl="grouped")
        want_mask = layer.routing_mask(x)
        want = layer(x)
        layer.set_rule(mode, **kw, impl="kernel")
        y, mask = K.layer_forward(layer, x)
        assert torch.equal(mask, want_mask)
        assert close(y, want)
        assert close(layer(x), want)
        layer.record = True
        layer(x)
        assert torch.equal(layer.counts[-1], want_mask.sum(-1))
        if mode == "dynk" and value == 0.0:
            assert bool(mask.all())          # tau = 0 runs every expert
        if mode == "topk":
            assert bool((mask.sum(-1) == value).all())


@needs_kernel
def test_kernel_with_a_torch_mask_equals_fused_and_mode_all_is_dense():
    """fused=False (torch router, C experts) gives the same numbers; mode 'all' runs the dense FFN."""
    layer = random_layer(24, 64, 384, seed=9)
    x = torch.randn(40, 384, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        layer.set_rule("dynk", tau=0.4, impl="kernel")
        a, ma = K.layer_forward(layer, x, fused=True)
        b, mb = K.layer_forward(layer, x, fused=False)
        assert torch.equal(ma, mb) and close(a, b)
        layer.set_rule("all", impl="kernel")
        y, m = K.layer_forward(layer, x)
        assert m is None and torch.equal(y, layer.dense_forward(x))


def test_layers_the_kernel_does_not_handle_fall_back_with_a_reason():
    """Gated or non-ReLU experts, float64 inputs, autograd: the torch grouped path, and status(layer) says why."""
    x = torch.randn(6, 32, generator=torch.Generator().manual_seed(0))
    cases = [(random_layer(4, 8, 32, gated=True), x, "gated"),
             (random_layer(4, 8, 32, act="silu"), x, "activation 'silu'"),
             (random_layer(4, 8, 32), x.double(), "float32")]
    for layer, xi, why in cases:
        if xi.dtype == torch.float64:
            layer = layer.double()
        layer.set_rule("dynk", tau=0.2, impl="kernel")
        with torch.no_grad():
            want = layer.run_grouped(xi, layer.routing_mask(xi))
            assert torch.equal(layer(xi), want)
        if K.available():
            assert why in K.unsupported(layer, xi)
            assert why in K.status(layer) or why == "float32"
    layer = random_layer(4, 8, 32)
    layer.set_rule("dynk", tau=0.2, impl="kernel")
    xg = x.clone().requires_grad_(True)
    y = layer(xg)
    y.sum().backward()                                  # autograd on: the torch path, gradients flow
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    if K.available():
        assert "autograd" in K.unsupported(layer, xg)


def test_turned_off_or_failed_build_falls_back_with_one_status_line(monkeypatch, tmp_path):
    """NBLIB_KERNELS=torch or a compiler that fails: impl='kernel' gives the torch numbers; status() says why."""
    layer = random_layer(12, 32, 64, seed=1)
    x = torch.randn(20, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        layer.set_rule("dynk", tau=0.3, impl="grouped")
        want = layer(x)
        layer.set_rule("dynk", tau=0.3, impl="kernel")
        monkeypatch.setattr(K, "_STATE", {})
        monkeypatch.setenv("NBLIB_KERNELS", "torch")
        assert not K.available()
        line = K.status()
        assert "NBLIB_KERNELS=torch" in line and "torch grouped path" in line and "\n" not in line
        assert torch.equal(layer(x), want)

        monkeypatch.delenv("NBLIB_KERNELS")
        monkeypatch.setenv("NBLIB_CACHE", str(tmp_path))
        monkeypatch.setenv("CC", "false")                # a compiler that always fails
        monkeypatch.setattr(K, "_STATE", {})
        assert not K.available()
        line = K.status()
        assert "compiling the D2DMoE grouped kernel failed" in line and "\n" not in line
        assert torch.equal(layer(x), want)
    monkeypatch.setattr(K, "_STATE", {})
