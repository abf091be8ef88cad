"""Finding FFNs, reading their weights, switching to ReLU (nblib.d2dmoe.ffn)."""
import pytest
import torch

from nblib import d2dmoe as D


def test_sites_found_and_weights_reproduce_each_ffn(tiny):
    kind, model, ids = tiny
    sites = D.ffn_sites(model)
    assert [s.kind for s in sites] == [kind, kind] and [s.index for s in sites] == [0, 1]
    assert all(s.d_ff == 64 for s in sites)
    x = torch.randn(5, 32)
    for s in sites:
        w = D.ffn_weights(s)
        if kind == "bert":
            ref = s.layer.output.dense(s.layer.intermediate(x))
        else:
            ref = s.layer.mlp(x)
        torch.testing.assert_close(w(x), ref, atol=1e-5, rtol=1e-5)


def test_relufy_switches_gelu_and_silu():
    from transformers import BertConfig, BertModel

    m = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                             intermediate_size=64))
    site = D.ffn_sites(m)[0]
    assert D.ffn.activation_name(site) == "gelu"
    D.relufy(m)
    assert D.ffn.activation_name(D.ffn_sites(m)[0]) == "relu"


def test_model_without_a_recognised_ffn_is_one_clear_error():
    with pytest.raises(D.UnrecognisedModel, match="found no FFN"):
        D.ffn_sites(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()))
    with pytest.raises(ValueError, match="found no FFN"):
        D.convert_model(torch.nn.Linear(4, 4), 2)
