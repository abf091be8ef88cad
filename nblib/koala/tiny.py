"""KOALA at laptop scale: the tiny SDXL-shaped text-to-digit U-Net, its data, captions and checkpoints.

`TINY_CONFIG` has the SDXL block structure (DW-1 resnets only, DW-2 depth-2 and
DW-3 depth-4 transformer stacks, cross-attention mid block, mirrored decoder),
narrow (16/32/32 channels), in pixel space on 16x16 MNIST digits, conditioned
by cross-attention on all-MiniLM-L6-v2 token states (384-d, projected to 32).
"""
from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..cache import SOURCE_ARCHIVES, verify_sha256
from . import recipes as K

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "koala"
MNIST_MEMBER = "bigbench-1.0.0/bigbench/benchmark_tasks/mnist_ascii/task.json"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = ["a handwritten digit {w}", "the number {w}", "a {d}"]
RES = 16

TINY_CONFIG: dict = {
    **{k: v for k, v in K.SDXL_BASE_CONFIG.items()
       if k not in ("addition_embed_type", "addition_time_embed_dim", "projection_class_embeddings_input_dim")},
    "sample_size": RES,
    "in_channels": 1,
    "out_channels": 1,
    "block_out_channels": [16, 32, 32],
    "transformer_layers_per_block": [1, 2, 4],  # DW-1 has none (DownBlock2D); SDXL: [-, 2, 10]
    "attention_head_dim": [1, 1, 1],  # head counts, as in diffusers' SDXL config
    "cross_attention_dim": 32,
    "encoder_hid_dim": 384,  # MiniLM token states, projected to cross_attention_dim
    "encoder_hid_dim_type": "text_proj",
    "norm_num_groups": 8,
}

TINY_RECIPES: dict[str, K.Recipe] = {
    "teacher": K.Recipe("teacher"),
    "BK": K.bk_recipe(name="BK"),  # block removal only
    "KOALA": K.koala_recipe(2, drop_mid=False, name="KOALA"),  # + lowest stacks 4 -> 2 (KOALA-1B-like)
    "KOALA-nomid": K.koala_recipe(2, drop_mid=True, name="KOALA-nomid"),  # + no mid block (KOALA-700M-like)
    # KOALA-700M's cut taken as far as this teacher allows: no mid block, every transformer stack one layer deep.
    # Here the 8x8 stacks (DW-2, UP-2: 6.1 MFLOPs a layer) carry the transformer compute that SDXL's deepest
    # stage carries (4x4 layers: 1.4 MFLOPs), so cutting only the deepest stage floors at 0.54x the FLOPs.
    "KOALA-T1": K.koala_recipe(1, drop_mid=True, name="KOALA-T1").with_depth(DW_2=1, UP_2=1),
}

FEATURE_KINDS = ("sa", "ca", "ffn", "res", "lf")
KOALA_FEATURES = "sa+lf@ends"  # SA everywhere + stage outputs at DW-1 and the last UP stage


# ----------------------------------------------------------------------------- data
def _ascii_to_bits(text: str) -> np.ndarray:
    rows = [r.ljust(28)[:28] for r in text.split("\n")[1:29]]  # the text starts with a newline
    return np.array([[c != " " for c in r] for r in rows], dtype=bool)


def build_mnist_subset(sdist: str | Path, n_train: int = 8000, n_test: int = 1000, seed: int = 0,
                       sha256: str | None = SOURCE_ARCHIVES["bigbench==1.0.0"][1]) -> dict:
    """Read BIG-bench's mnist_ascii task from the bigbench sdist (sha256 checked first); return a seeded subset."""
    if sha256 is not None:
        verify_sha256(sdist, sha256)
    with tarfile.open(sdist) as tar:
        task = json.load(tar.extractfile(MNIST_MEMBER))
    images, labels = [], []
    for ex in task["examples"]:
        lines = ex["input"].split("\n")
        if len(lines) < 30 or len([r for r in lines[1:29] if len(r) == 28]) != 28:
            continue  # the 12-row '@' renderings are cropped; keep the 28x28 ones
        label = [int(k) for k, v in ex["target_scores"].items() if v == 1]
        if len(label) != 1:
            continue
        images.append(_ascii_to_bits(ex["input"]))
        labels.append(label[0])
    images, labels = np.stack(images), np.array(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(labels))[: n_train + n_test]
    return {"train_bits": np.packbits(images[idx[:n_train]], axis=-1), "train_labels": labels[idx[:n_train]],
            "test_bits": np.packbits(images[idx[n_train:]], axis=-1), "test_labels": labels[idx[n_train:]],
            "n_source": np.int64(len(labels))}


def to_pixels(bits: np.ndarray) -> torch.Tensor:
    """Packed 28x28 binary digits -> (N, 1, 16, 16) float images in [-1, 1] (pad to 32, 2x2 mean)."""
    img = np.unpackbits(bits, axis=-1)[..., :28].astype(np.float32)
    x = torch.from_numpy(img).unsqueeze(1)
    x = F.pad(x, (2, 2, 2, 2))
    x = F.avg_pool2d(x, 2)
    return x * 2 - 1


def load_digits(path: str | Path | None = None) -> dict:
    """Load the committed MNIST subset: train/test images (N,1,16,16) in [-1,1] and labels."""
    path = Path(path) if path else DATA_DIR / "mnist_subset.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with `python scripts/train_koala.py data`")
    z = np.load(path, allow_pickle=False)  # plain arrays only: a pickled object array is refused
    return {"train_x": to_pixels(z["train_bits"]), "train_y": torch.from_numpy(z["train_labels"]),
            "test_x": to_pixels(z["test_bits"]), "test_y": torch.from_numpy(z["test_labels"])}


def captions() -> list[str]:
    """All captions: index 0 is the empty (unconditional) caption, then digit x template."""
    out = [""]
    for d in range(10):
        out += [t.format(w=WORDS[d], d=d) for t in TEMPLATES]
    return out


def caption_index(digit: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Index into `captions()` of (digit, template) pairs."""
    return 1 + digit * len(TEMPLATES) + template


@torch.no_grad()
def text_states(encoder=None, tokenizer=None) -> torch.Tensor:
    """MiniLM token states for every caption, padded to one length: (n_captions, T, 384)."""
    if encoder is None:
        from ..zoo import load_encoder

        encoder, tokenizer = load_encoder("minilm", device="cpu")
    enc = tokenizer(captions(), padding=True, return_tensors="pt")
    return encoder(**enc).last_hidden_state.float()


# ----------------------------------------------------------------------------- noise schedule
def scheduler():
    """The training noise schedule: 1000-step DDPM, cosine betas, epsilon prediction."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon")


def build_tiny(name: str = "teacher", device: str = "cpu", seed: int = 0):
    """Build a random-init tiny U-Net for one of TINY_RECIPES; return (unet, layout)."""
    if name not in TINY_RECIPES:
        raise KeyError(f"unknown tiny model {name!r}; choose from {list(TINY_RECIPES)}")
    cfg, layout = K.derive(TINY_CONFIG, TINY_RECIPES[name])
    torch.manual_seed(seed)
    return K.build_unet(cfg, device), layout




# ----------------------------------------------------------------------------- checkpoints
def save_model(model: torch.nn.Module, path: str | Path, meta: dict | None = None) -> None:
    """Save a state dict as fp16 safetensors (small enough to commit), with string metadata."""
    from safetensors.torch import save_file

    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(path), metadata={k: json.dumps(v) for k, v in (meta or {}).items()})


def load_into(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load a safetensors checkpoint (written by save_model) into `model` as fp32, eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with `python scripts/train_koala.py all`")
    sd = {k: v.float() for k, v in load_file(str(path)).items()}
    model.load_state_dict(sd)
    return model.eval()


def load_tiny(name: str, data_dir: str | Path | None = None):
    """Load a committed tiny model ('teacher', or a student checkpoint name) with its layout."""
    data_dir = Path(data_dir) if data_dir else DATA_DIR
    recipe = "teacher" if name == "teacher" else name.split(":")[0]
    unet, layout = build_tiny(recipe)
    fname = "teacher" if name == "teacher" else "student_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    return load_into(unet, data_dir / f"{fname}.safetensors"), layout


def checkpoint_name(recipe: str, features: str) -> str:
    """Name of a student checkpoint: recipe and feature-KD choice."""
    return f"{recipe}:{features}"
