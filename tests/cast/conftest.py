"""Fixtures of the CAST tests: tiny random Llama targets and drafts, and seeded prompts."""
from __future__ import annotations

import pytest
import torch

VOCAB = 97


def make_tiny(seed: int, layers: int = 2, d: int = 32, heads: int = 4, kv_heads: int = 2, vocab: int = VOCAB):
    """A tiny random Llama (fp32, CPU); large init so logits are spread out (no argmax near-ties)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=d, intermediate_size=2 * d, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512,
                      initializer_range=0.2)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def models():
    """Three targets and two drafts (a random one, and one of another width)."""
    torch.set_num_threads(1)
    return {"t_small": make_tiny(0), "t_deep": make_tiny(1, layers=3, d=48, heads=6, kv_heads=3), "t_mha": make_tiny(2, d=24, heads=2, kv_heads=2),
            "d_rand": make_tiny(10, layers=1), "d_other": make_tiny(11, layers=1, d=16, heads=2, kv_heads=1)}


def make_prompts(n: int = 4, seed: int = 3, lengths=(5, 1, 9, 3, 12, 2)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (lengths[i % len(lengths)],), generator=g).tolist() for i in range(n)]


@pytest.fixture
def prompts():
    """make_prompts(n, seed, lengths): seeded random prompt-id lists."""
    return make_prompts


@pytest.fixture
def tiny():
    """make_tiny(seed, layers, d, heads, kv_heads, vocab): a tiny random Llama."""
    return make_tiny

