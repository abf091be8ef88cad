"""The task world's models: the character tokenizer, the Llama shape, and checkpoints in data/taskworld.

The models are transformers' own `LlamaForCausalLM` (so `generate`, KV caches
and 4D attention masks work), trained by scripts/train_taskworld.py on the
problems of `nblib.taskworld.problems` and committed under data/taskworld/<name>/ as
`model.safetensors` + `config.json` (the LlamaConfig) + `train.json` (how it was
trained, how long it took). A sequence is ``<bos> problem \\n solution <eos>``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from ..cost import TransformerShape
from . import problems as T

# ----------------------------------------------------------------------------- tokenizer
SPECIALS = ("<pad>", "<bos>", "<eos>")
CHARS = "\n0123456789+-*=#,"
VOCAB = SPECIALS + tuple(CHARS)
PAD, BOS, EOS = 0, 1, 2
NEWLINE = VOCAB.index("\n")
_STOI = {c: i for i, c in enumerate(VOCAB)}

MODELS_DIR = T.DATA_DIR
# Task world v2 (the default): a ladder shaped like a model family, trained on `problems.V2_MIX`
LADDER = ("v2-tiny", "v2-mid", "v2-large")  # cheapest to most expensive
# kind of step -> model name; a fine-tuned add specialist gained only 5 points on add (needs 15), so none ships
SPECIALISTS = {"-": "v2-spec-sub", "*": "v2-spec-mul"}
# The first ladder (2-digit totals, 1-6 steps), kept under its own names until STEER, HierRouter and
# D2DMoE have moved to v2
LADDER_V1 = ("tiny", "mid", "large")
SPECIALISTS_V1 = {"+": "spec-add", "-": "spec-sub", "*": "spec-mul"}


class UnknownModel(KeyError):
    """A task-model name with no checkpoint; the message lists the ones there are."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class CheckpointMismatch(ValueError):
    """A checkpoint whose weights, config or vocabulary do not fit together."""


def encode(text: str, bos: bool = True) -> list[int]:
    """Token ids of a text (one per character), with <bos> first by default."""
    if not isinstance(text, str):
        raise T.MalformedProblem(f"text must be a string of task characters, got {type(text).__name__} {text!r:.60}")
    try:
        ids = [_STOI[c] for c in text]
    except KeyError as e:
        raise T.MalformedProblem(f"character {e.args[0]!r} is not in the task vocabulary {CHARS!r}") from None
    return [BOS] + ids if bos else ids


def decode(ids: Iterable[int]) -> str:
    """Text of token ids, special tokens dropped; a ValueError naming `ids` for anything but ids of the vocabulary."""
    from .. import checks

    if isinstance(ids, torch.Tensor):
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise checks.BadArgument(f"ids must be a list of token ids, got {type(ids).__name__} {ids!r:.60}")
    ids = [checks.whole("ids", i, low=0, high=len(VOCAB) - 1) for i in ids]
    return "".join(VOCAB[i] for i in ids if i >= len(SPECIALS))


def prompt_of(problem: T.Problem) -> str:
    """The text a model is given: the problem line and a newline."""
    return problem.text + "\n"


# ----------------------------------------------------------------------------- models
@dataclass(frozen=True)
class Arch:
    """Shape of a task model (a small Llama)."""

    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_len: int = 128

    def config(self):
        """The transformers LlamaConfig for this shape and the char vocabulary."""
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=len(VOCAB), hidden_size=self.d_model, intermediate_size=self.d_ff,
            num_hidden_layers=self.n_layers, num_attention_heads=self.n_heads, num_key_value_heads=self.n_heads,
            max_position_embeddings=self.max_len, tie_word_embeddings=True, rms_norm_eps=1e-5,
            bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, attention_dropout=0.0,
            architectures=["LlamaForCausalLM"],
        )


def build_model(arch: Arch, seed: int = 0):
    """A freshly initialised LlamaForCausalLM of this shape (SDPA attention, fp32)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = arch.config()
    cfg._attn_implementation = "sdpa"
    return LlamaForCausalLM(cfg)


def available_models(root: Path | str = MODELS_DIR) -> list[str]:
    """Names of the task models with a committed checkpoint."""
    root = Path(root)
    return sorted(p.parent.name for p in root.glob("*/model.safetensors")) if root.exists() else []


def rebuild_command(name: str) -> str:
    """The command that retrains (and rewrites) a committed task model's checkpoint."""
    return f"python scripts/train_taskworld.py {name}"


def _read_record(folder: Path, file: str, name: str) -> dict:
    """config.json or train.json of a checkpoint as a dict; CorruptArtefact naming the file and its rebuild command."""
    from ..cache import CorruptArtefact, read_json

    value = read_json(folder / file, rebuild_command(name))
    if not isinstance(value, dict):
        raise CorruptArtefact(f"{folder / file} holds a JSON {type(value).__name__}, not an object (corrupt or "
                              f"overwritten); rebuild it with: {rebuild_command(name)}")
    return value


def model_info(name: str, root: Path | str = MODELS_DIR) -> dict:
    """The training record (train.json) of a committed task model; CorruptArtefact if it cannot be read."""
    folder = checkpoint_folder(name, root)
    return _read_record(folder, "train.json", str(name))


def default_task(name: str, root: Path | str = MODELS_DIR) -> "T.TaskConfig | T.TaskMix":
    """The problems a committed model is evaluated on: the v2 mix for v2 models, else the default TaskConfig."""
    info = model_info(name, root)
    return T.V2_MIX if "levels" in info["spec"].get("task", {}) else T.TaskConfig()


def checkpoint_folder(name: str, root: Path | str = MODELS_DIR) -> Path:
    """The folder of a committed task model; UnknownModel (listing the ones there are) when it has none."""
    folder = Path(root) / str(name)
    if not (folder / "model.safetensors").exists():
        have = available_models(root)
        raise UnknownModel(f"no task model named {name!r} in {Path(root)}; available: {have or 'none'}"
                           + ("" if have else " (rebuild them with: python scripts/train_taskworld.py)"))
    return folder


def save_model(model, folder: Path | str, record: dict) -> None:
    """Write model.safetensors, config.json and train.json into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg.pop("_attn_implementation_autoset", None)
    (folder / "config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")
    (folder / "train.json").write_text(json.dumps({**record, "vocab": "".join(VOCAB[3:])}, indent=1) + "\n")


def load_model(name: str, root: Path | str = MODELS_DIR, device: Any = "cpu"):
    """Load a committed task model by name (e.g. 'tiny', 'spec-mul'), eval mode; clear errors if it does not fit."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ..cache import CorruptArtefact, read_safetensors

    folder = checkpoint_folder(name, root)
    rebuild = rebuild_command(name)
    raw = _read_record(folder, "config.json", str(name))
    try:
        cfg = LlamaConfig(**{k: v for k, v in raw.items() if k not in {"transformers_version", "model_type"}})
        sizes = (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers)
        if not all(isinstance(v, int) and v > 0 for v in sizes):
            raise ValueError(f"vocab_size, hidden_size, num_hidden_layers = {sizes}")
    except Exception as e:  # noqa: BLE001 (TypeError, ValueError, transformers' strict-field errors: one meaning)
        raise CorruptArtefact(f"{folder / 'config.json'} is not a usable model config ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:160]}); rebuild it with: {rebuild}") from None
    if cfg.vocab_size != len(VOCAB):
        raise CheckpointMismatch(f"{folder}/config.json has vocab_size {cfg.vocab_size} but the task tokenizer "
                                 f"has {len(VOCAB)} tokens")
    info = _read_record(folder, "train.json", str(name)) if (folder / "train.json").exists() else {}
    if info.get("vocab", "".join(VOCAB[3:])) != "".join(VOCAB[3:]):
        raise CheckpointMismatch(f"{folder} was trained with vocabulary {info['vocab']!r}, not {''.join(VOCAB[3:])!r}")
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg)
    state = read_safetensors(folder / "model.safetensors", rebuild)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "lm_head.weight"}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))[:3]
        extra = sorted(set(got) - set(expected))[:3]
        wrong = [(k, got[k], expected[k]) for k in expected if k in got and got[k] != expected[k]][:3]
        raise CheckpointMismatch(
            f"{folder}: the weights do not match config.json (hidden_size={cfg.hidden_size}, "
            f"layers={cfg.num_hidden_layers}); missing {missing}, unexpected {extra}, shape (got, want) {wrong}")
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    return model.to(device).eval()


def shape_of(model) -> TransformerShape:
    """The FLOP-relevant shapes of a task model."""
    return TransformerShape.from_config(model.config)
