"""The committed artefacts: sparsified MiniLM and task-world deltas, routers and splits (nblib.d2dmoe.models)."""
import pytest
import torch

from nblib import d2dmoe as D


@pytest.fixture(scope="module")
def minilm_moe():
    return D.load_moe("minilm", 96)


def test_committed_minilm_moe_all_experts_equal_the_sparsified_dense_model(minilm_moe):
    model, layers = minilm_moe
    dense = D.load_base("minilm", "sparse")
    tok = D.models.tokenizer()
    b = D.data.encode(tok, D.load_multiemo("test", 4), 32)
    with torch.no_grad():
        ref = dense(b["input_ids"], b["attention_mask"])
        D.set_rule(layers, "all", impl="grouped")
        torch.testing.assert_close(model(b["input_ids"], b["attention_mask"]), ref, atol=1e-4, rtol=1e-4)
        D.set_rule(layers, "dynk", tau=0.0, impl="grouped")
        torch.testing.assert_close(model(b["input_ids"], b["attention_mask"]), ref, atol=1e-4, rtol=1e-4)


def test_committed_sparsified_minilm_is_sparser_than_the_relu_swap():
    rec = D.models.training_record("minilm")
    assert rec["after"]["zero_fraction"] > rec["before_relu_swap"]["zero_fraction"]
    assert 0 < rec["before_gelu"]["nonpositive_fraction"] < 1


def test_committed_routers_skip_experts_and_flops_fall_with_tau(minilm_moe):
    model, layers = minilm_moe
    tok = D.models.tokenizer()
    reviews = D.load_multiemo("test", 8)
    ratios = [D.evaluate_classifier(model, layers, tok, reviews, "dynk", t, max_len=32).ffn_flops_ratio
              for t in (0.0, 0.2, 0.5, 1.0)]
    assert all(a > b for a, b in zip(ratios, ratios[1:], strict=False)) and ratios[-1] < 0.2


def test_missing_artefact_and_unknown_model_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="d2dmoe_train.py"):
        D.load_moe("minilm", 96, routers=tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match="model must be one of"):
        D.load_base("gpt2")
