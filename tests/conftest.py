"""Shared fixtures: tiny random models built from configs, and the embedded SmolLM2 (loaded once)."""
from __future__ import annotations

import os
import subprocess

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def tiny_llama(layers=2, d=64, heads=4, kv_heads=2, ff=128, vocab=97, seed=0):
    """A random-init LlamaForCausalLM small enough for unit tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      intermediate_size=ff, vocab_size=vocab, max_position_embeddings=512, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


class CharTokenizer:
    """Just enough of a tokenizer for LocalLLM tests: one id per printable character."""

    def __init__(self, vocab=97):
        from transformers import PreTrainedTokenizerFast
        from tokenizers import Tokenizer, models, pre_tokenizers, decoders

        chars = [chr(i) for i in range(32, 32 + vocab - 2)]
        vocab_map = {"<pad>": 0, "</s>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
        tk = Tokenizer(models.WordLevel(vocab_map, unk_token="</s>"))
        tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
        tk.decoder = decoders.Fuse()
        self.tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>")


@pytest.fixture(scope="session")
def tiny_model():
    return tiny_llama()


@pytest.fixture(scope="session")
def char_tokenizer():
    return CharTokenizer().tok


@pytest.fixture(scope="session")
def smollm2():
    from nblib import zoo

    return zoo.load_causal_lm("smollm2", device="cpu")


def _stop_process(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """Stop a server we started, by its PID: wait `grace_s` after a polite request, then SIGTERM, then SIGKILL."""
    for signal_it in (lambda: None, proc.terminate, proc.kill):
        signal_it()
        try:
            proc.wait(grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def stop_process():
    """stop_process(proc, grace_s): stop a server a test started, by its PID (polite, then SIGTERM, then SIGKILL)."""
    return _stop_process


@pytest.fixture(scope="session")
def make_tiny_llama():
    """make_tiny_llama(layers, d, heads, kv_heads, ff, vocab, seed): a random-init LlamaForCausalLM."""
    return tiny_llama


@pytest.fixture(scope="module")
def served_smollm2(stop_process):
    """`transformers serve` on 127.0.0.1 with the embedded model: yields its base URL; stopped by its PID afterwards."""
    import socket
    import sys
    import time
    from pathlib import Path

    import requests

    from nblib import zoo

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).parent / "transformers"
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-{port}.log", "wb")
    proc = subprocess.Popen([str(exe), "serve", str(zoo.smollm2_folder()), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {proc.returncode}; see {log.name}")
            try:
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"transformers serve did not start in 180 s; see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        stop_process(proc)
        log.close()
