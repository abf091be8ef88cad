"""nblib.d2dmoe.decoder: Llama gated MLPs as experts (oracle dynamic-k), first token dense, roofline."""
from __future__ import annotations

import math

import pytest
import torch

from nblib import checks
from nblib.d2dmoe import decoder as dec


def silu_llama(layers=2, d=32, ff=64, seed=0):
    """A random LlamaForCausalLM with SiLU gated MLPs (SmolLM2's shape, tiny)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=d, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=ff, vocab_size=40, max_position_embeddings=64, hidden_act="silu",
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


IDS = torch.randint(1, 40, (2, 9), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("split", ["contiguous", "kmeans"])
def test_every_expert_on_equals_dense_mlp(split):
    model = silu_llama()
    with torch.no_grad():
        ref = model(input_ids=IDS).logits
        x = torch.randn(2, 5, 32)
        mlp_ref = model.model.layers[0].mlp(x)
    layers = dec.to_experts(model, n_experts=8, split=split)
    assert len(layers) == 2 and layers[0].moe.size == 8
    dec.set_oracle(model, 0.0, keep_first_dense=False)
    with torch.no_grad():
        assert torch.allclose(layers[0](x), mlp_ref, atol=1e-5)
        assert torch.allclose(model(input_ids=IDS).logits, ref, atol=1e-5)


def test_oracle_curve_shares_and_first_token():
    model = silu_llama()
    dec.to_experts(model, n_experts=8, split="contiguous")
    seqs = [IDS[0], IDS[1]]
    rows = dec.oracle_curve(model, seqs, [0.0, 0.5, 1.0], keep_first_dense=True, progress=False)
    assert rows[0]["flops_share"] == 1.0 and rows[0]["flops_share_all"] == 1.0
    assert rows[0]["tokens"] == 16
    shares = [r["flops_share"] for r in rows]
    assert shares == sorted(shares, reverse=True)
    assert rows[2]["flops_share"] == pytest.approx(1 / 8)  # tau = 1: only the top expert (no ties)
    assert rows[2]["flops_share_all"] == pytest.approx((8 * 2 + 1 * 16) / (8 * 18))  # position 0 dense
    off = dec.oracle_curve(model, seqs, [1.0], keep_first_dense=False, progress=False)[0]
    assert off["flops_share_all"] == pytest.approx(1 / 8)
    # position 0 dense changes nothing at tau = 0
    on0 = dec.oracle_curve(model, seqs, [0.0], keep_first_dense=False, progress=False)[0]
    assert on0["ppl"] == pytest.approx(rows[0]["ppl"], rel=1e-6)


def test_bad_inputs():
    model = silu_llama()
    with pytest.raises(ValueError, match="divide"):
        dec.to_experts(model, n_experts=7, split="contiguous")
    with pytest.raises(checks.BadArgument):
        dec.set_oracle(model, 0.1)  # not converted yet
    dec.to_experts(model, n_experts=8, split="contiguous")
    with pytest.raises(ValueError):
        dec.set_oracle(model, 1.5)


def test_interpolation():
    rows = [{"flops_share": 1.0, "ppl": 5.0}, {"flops_share": 0.9, "ppl": 7.0}, {"flops_share": 0.5, "ppl": 20.0}]
    assert dec.ppl_at_share(rows, 0.95) == pytest.approx(6.0)
    assert math.isnan(dec.ppl_at_share(rows, 0.2))
    assert dec.share_at_ppl(rows, 6.0) == pytest.approx(0.95)
    assert math.isnan(dec.share_at_ppl(rows, 30.0))


def test_decode_step_ratio():
    assert dec.decode_step_ratio(100, 60, 1.0) == 1.0
    assert dec.decode_step_ratio(100, 60, 0.5) == pytest.approx(0.7)
    assert dec.decode_step_ratio(100, 60, 0.5, router_bytes=5) == pytest.approx(0.75)
    assert dec.decode_step_ratio(100, 60, 0.0) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        dec.decode_step_ratio(100, 60, 1.2)
    with pytest.raises(ValueError):
        dec.decode_step_ratio(100, 160, 0.5)


def test_smollm2_bytes_counts_parameters():
    model = silu_llama()
    parts = dec.smollm2_bytes(model.config, bytes_per_param=1.0)
    n = sum(p.numel() for p in model.parameters())  # tied embeddings counted once
    assert model.config.tie_word_embeddings
    assert parts["total"] == n
    assert parts["mlp"] == 2 * 3 * 32 * 64


def test_relu_finetune_tiny_runs_and_reloads(tmp_path):
    model = silu_llama()
    windows = [torch.randint(1, 40, (8,), generator=torch.Generator().manual_seed(i)) for i in range(4)]
    model, state, hist = dec.relu_sparsity_finetune(model, windows, max_seconds=1.0, batch=2, rank=2,
                                                   progress=False)
    assert hist.tokens > 0
    assert any(k.startswith("lora.") for k in state) and any(k.startswith("full.") for k in state)
    from safetensors.torch import save_file

    save_file(state, tmp_path / "d.safetensors")
    fresh = dec.load_finetuned(silu_llama(), tmp_path / "d.safetensors")
    with torch.no_grad():
        assert torch.allclose(fresh(input_ids=IDS).logits, model(input_ids=IDS).logits, atol=1e-2)
    z = dec.zero_fraction(fresh, [IDS[0]])
    assert 0.0 < z["zero_fraction"] <= 1.0
