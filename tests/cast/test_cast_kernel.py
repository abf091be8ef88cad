"""The skinny verify kernel: it equals torch's linear, does not depend on the row count, falls back cleanly,
and speculative decoding stays lossless with it on and off."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nblib import cast
from nblib.cast import kernel, tree

needs_kernel = pytest.mark.skipif(not kernel.available(), reason="skinny kernel unavailable here: "
                                  + (kernel.status() if not kernel.available() else ""))


@needs_kernel
@pytest.mark.parametrize("M", [1, 2, 3, 4, 5, 8, 13, 32, 64])
@pytest.mark.parametrize("N,K", [(1, 8), (7, 16), (96, 40), (130, 64)])
def test_kernel_equals_torch_linear(M, N, K):
    """y = x @ W.T (+ bias) matches F.linear to float32 rounding, for any row count and odd output widths."""
    g = torch.Generator().manual_seed(M * 1000 + N + K)
    x, w, b = torch.randn(M, K, generator=g), torch.randn(N, K, generator=g), torch.randn(N, generator=g)
    with torch.no_grad():
        for bias in (None, b):
            got, want = kernel.linear(x, w, bias), F.linear(x, w, bias)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_kernel
def test_kernel_rows_do_not_depend_on_the_batch_shape():
    """Each output row is bit-identical whether it is computed alone or among 1..64 rows (batch invariance)."""
    g = torch.Generator().manual_seed(5)
    w = torch.randn(50, 64, generator=g)
    x = torch.randn(64, 64, generator=g)
    with torch.no_grad():
        alone = torch.cat([kernel.linear(x[i:i + 1], w) for i in range(64)])
        for M in (2, 3, 7, 64):
            assert torch.equal(kernel.linear(x[:M], w), alone[:M]), M


def test_kernel_falls_back_to_torch_where_it_cannot_run():
    """Many rows, autograd, float64 or K not a multiple of 8: exactly F.linear's result."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(16, 32, generator=g)
    cases = [torch.randn(kernel.MAX_ROWS + 1, 32, generator=g), torch.randn(3, 32, generator=g).double()]
    with torch.no_grad():
        for x in cases:
            assert torch.equal(kernel.linear(x, w.to(x.dtype)), F.linear(x, w.to(x.dtype)))
        w12, x12 = torch.randn(4, 12, generator=g), torch.randn(2, 12, generator=g)
        assert not kernel.usable(x12, w12)
        assert torch.equal(kernel.linear(x12, w12), F.linear(x12, w12))
    wg = w.clone().requires_grad_()
    y = kernel.linear(torch.randn(2, 32, generator=g), wg)
    y.sum().backward()  # autograd path: torch's op, so gradients flow
    assert wg.grad is not None


def test_fast_linears_patches_inside_the_block_only(models):
    """Inside the block the model's Linear layers use the kernel; afterwards they are untouched."""
    T = models["t_small"]
    lin = [m for m in T.modules() if isinstance(m, torch.nn.Linear)]
    with kernel.fast_linears(T) as on:
        assert on == kernel.available()
        assert kernel.active() == on
        assert all(("forward" in m.__dict__) == on for m in lin)
    assert not kernel.active()
    assert all("forward" not in m.__dict__ for m in lin)
    with kernel.fast_linears(T, enabled=False) as on:
        assert on is False and not kernel.active()


def test_turning_the_kernel_off_says_so(monkeypatch):
    """NBLIB_KERNELS=torch turns the kernel off, and status() says how."""
    monkeypatch.setattr(kernel, "_STATE", {})
    monkeypatch.setenv(kernel.ENV, "torch")
    assert not kernel.available()
    assert "NBLIB_KERNELS=torch" in kernel.status()
    x, w = torch.randn(2, 8), torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(kernel.linear(x, w), F.linear(x, w))


@pytest.mark.parametrize("kernels", [True, False])
def test_speculative_and_plain_decoding_lossless_with_and_without_the_kernel(models, prompts, kernels):
    """generate and plain_greedy equal the target's own greedy generate with the kernel on and off, batch 1-4."""
    T, D = models["t_deep"], models["d_rand"]
    ps = prompts(4, seed=11)
    ref = cast.greedy_reference(T, ps, 20)
    assert cast.plain_greedy(T, ps, 20, kernels=kernels).sequences == ref
    for pol in (cast.chain(3), cast.FixedTree(3, 4, 12)):
        for bs in (1, 4):
            got = []
            for s in range(0, len(ps), bs):
                got += cast.generate(T, D, ps[s:s + bs], 20, pol, kernels=kernels).sequences
            assert got == ref, (pol, bs)


def test_lean_llama_layer_equals_the_transformers_layer(models):
    """tree's direct Llama layer gives the hidden states of transformers' own layer call (cache included)."""
    T = models["t_deep"]
    body = T.model
    g = torch.Generator().manual_seed(2)
    B, N = 2, 5
    h = torch.randn(B, N, T.config.hidden_size, generator=g)
    pos = torch.arange(N)[None].expand(B, N)
    mask = torch.zeros(B, 1, N, N)
    mask.masked_fill_(~torch.tril(torch.ones(N, N, dtype=torch.bool)), tree.NEG)
    from transformers import DynamicCache

    with torch.no_grad():
        pe = body.rotary_emb(h, position_ids=pos)
        layer = body.layers[0]
        assert tree._is_llama_layer(layer)
        c1, c2 = DynamicCache(), DynamicCache()
        want = layer(h, attention_mask=mask, position_embeddings=pe, position_ids=pos, cache=c1, use_cache=True)
        want = want[0] if isinstance(want, tuple) else want
        got = tree._llama_layer(layer, h, mask, pe, c2)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c2.layers[0].keys, c1.layers[0].keys)


@needs_kernel
def test_kernel_calls_are_labelled_for_the_profiler():
    """Inside `profiled()` each kernel call is an event torch's profiler lists (it cannot see inside ctypes)."""
    from torch.profiler import profile

    x, w = torch.randn(2, 16), torch.randn(8, 16)
    with torch.no_grad(), kernel.profiled(), profile() as prof:
        kernel.linear(x, w)
        kernel.linear(x, w)
    names = {e.key: e.count for e in prof.key_averages()}
    assert names.get(kernel.PROFILE_NAME) == 2
    assert not kernel._PROFILED[0]


@needs_kernel
def test_a_kernel_library_that_does_not_match_its_recorded_sha256_is_rebuilt_not_loaded(monkeypatch, tmp_path):
    """The build records the library's sha256 beside it; a library changed since (here: truncated, then a hash
    file gone) is refused with one warning and rebuilt, and the rebuilt one matches its record again."""
    import hashlib
    import warnings

    monkeypatch.setenv("NBLIB_CACHE", str(tmp_path))
    monkeypatch.setattr(kernel, "_STATE", {})
    assert kernel.available()
    (lib,) = (tmp_path / "kernels").glob("skinny-*.so")
    record = lib.with_name(lib.name + ".sha256")
    assert record.read_text().strip() == hashlib.sha256(lib.read_bytes()).hexdigest()
    assert kernel.library_matches(lib)
    with warnings.catch_warnings():   # a library that matches loads without a word
        warnings.simplefilter("error")
        monkeypatch.setattr(kernel, "_STATE", {})
        assert kernel.available()

    cut = tmp_path / "cut.so"                 # a new file renamed over it: the loaded one is mapped, never written
    cut.write_bytes(lib.read_bytes()[:4096])
    cut.replace(lib)                                               # truncated: not the library that was built
    assert not kernel.library_matches(lib)
    monkeypatch.setattr(kernel, "_STATE", {})
    with pytest.warns(UserWarning, match=r"does not match the sha256 recorded.*rebuilding") as rec:
        assert kernel.available()
    assert len([w for w in rec if "sha256" in str(w.message)]) == 1
    assert kernel.library_matches(lib)

    record.unlink()                                                # no record: refused the same way
    monkeypatch.setattr(kernel, "_STATE", {})
    with pytest.warns(UserWarning, match="sha256"):
        assert kernel.available()
    assert kernel.library_matches(lib)


@needs_kernel
def test_a_row_limit_sends_larger_products_to_torch_and_is_restored():
    """fast_linears(max_rows=r): the kernel up to r activation rows, torch's matmul above; the limit ends with the
    block; a negative limit is one clear error."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32)
    x8 = torch.randn(8, 64)
    with torch.no_grad():
        with kernel.fast_linears(lin, max_rows=4):
            assert kernel.row_limit() == 4
            assert not kernel.usable(x8, lin.weight) and kernel.usable(x8[:4], lin.weight)
            assert torch.equal(lin(x8), torch.nn.functional.linear(x8, lin.weight, lin.bias))
        assert kernel.row_limit() == kernel.MAX_ROWS
        with kernel.fast_linears(lin):
            with kernel.limited(0):  # torch's matmul for every product, then the kernel again
                assert kernel.row_limit() == 0 and not kernel.usable(x8[:1], lin.weight)
            assert kernel.row_limit() == kernel.MAX_ROWS and kernel.usable(x8, lin.weight)
    with pytest.raises(ValueError, match="max_rows"):
        with kernel.fast_linears(lin, max_rows=-1):
            pass
