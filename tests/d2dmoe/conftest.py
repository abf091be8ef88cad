"""Tiny random BERT and Llama models with ReLU FFNs for the D2DMoE tests."""
from __future__ import annotations

import pytest
import torch


def tiny_bert(layers=2, d=32, ff=64, seed=0):
    """A random BertModel small enough for unit tests (ReLU FFNs)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=50, hidden_size=d, num_hidden_layers=layers, num_attention_heads=4,
                     intermediate_size=ff, max_position_embeddings=64, hidden_act="relu")
    return BertModel(cfg).eval()


def tiny_gated(layers=2, d=32, ff=64, seed=0):
    """A random LlamaForCausalLM with ReLU gated MLPs."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=d, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                      intermediate_size=ff, vocab_size=40, max_position_embeddings=64, hidden_act="relu")
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(params=["bert", "gated"])
def tiny(request):
    """(kind, model, input ids) for each FFN shape."""
    model = tiny_bert() if request.param == "bert" else tiny_gated()
    ids = torch.randint(1, 40, (3, 11), generator=torch.Generator().manual_seed(1))
    return request.param, model, ids


def _run(model, ids):
    """The model's last hidden states (BERT) or logits (Llama)."""
    out = model(input_ids=ids)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out.logits


@pytest.fixture
def run():
    """run(model, ids): the model's last hidden states (BERT) or logits (Llama)."""
    return _run


@pytest.fixture
def make_bert():
    """Factory of tiny random BERT models with ReLU FFNs."""
    return tiny_bert


@pytest.fixture
def make_gated():
    """Factory of tiny random Llama models with ReLU gated MLPs."""
    return tiny_gated
