"""A small draft model for speculative decoding of SmolLM2: two Llama blocks on the target's frozen embeddings.

The draft shares the target's tokenizer, width and tied embedding/LM-head matrix
(loaded from the target, never saved), so only its two blocks and final norm are
trained and stored. Its predictions are restricted to a "draft vocabulary" (the
tokens the target actually produced in training), like EAGLE-3's reduced draft
head: cheaper to run, and verification by the target keeps decoding lossless.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F


@dataclass
class Draft:
    """A draft LM (a full transformers causal LM) plus the subset of token ids it proposes from."""

    model: torch.nn.Module          # LlamaForCausalLM; usable as `assistant_model` in transformers' generate
    vocab: torch.Tensor | None      # (V',) long: target token ids the draft may propose; None = all

    @property
    def config(self):
        """The underlying model's config."""
        return self.model.config

    def head_weight(self) -> torch.Tensor:
        """The LM-head rows of the draft vocabulary, shape (V', d)."""
        w = self.model.get_output_embeddings().weight
        return w if self.vocab is None else w[self.vocab]


def init_from_target(target, vocab: list[int], layers: tuple[int, ...] = (0, -1)) -> Draft:
    """A draft whose blocks are copies of the target's `layers`, embeddings shared and frozen."""
    from transformers import AutoModelForCausalLM

    cfg = copy.deepcopy(target.config)
    cfg.num_hidden_layers = len(layers)
    if hasattr(cfg, "layer_types") and cfg.layer_types is not None:
        cfg.layer_types = cfg.layer_types[:len(layers)]
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    _share_embeddings(model, target)
    for i, src in enumerate(layers):
        model.model.layers[i].load_state_dict(target.model.layers[src].state_dict())
    model.model.norm.load_state_dict(target.model.norm.state_dict())
    return Draft(model.eval(), torch.tensor(sorted(vocab), dtype=torch.long))


def _share_embeddings(model, target) -> None:
    """Point the draft's input embeddings and LM head at the target's (frozen, never saved)."""
    model.model.embed_tokens.weight = target.model.embed_tokens.weight
    model.get_output_embeddings().weight = target.get_output_embeddings().weight
    model.model.embed_tokens.weight.requires_grad_(False)
    model.get_output_embeddings().weight.requires_grad_(False)


def loss_on(draft: Draft, rows: list[dict]) -> tuple[torch.Tensor, float]:
    """Cross-entropy of the draft on the target's greedy next tokens, and its top-1 agreement with the target.

    A row is {'ids', 'start'} (a target continuation after a prompt) or {'ids', 'labels'} (text with the target's
    greedy next token at every position).
    """
    width = max(len(r["ids"]) for r in rows)
    pad = 0
    ids = torch.tensor([r["ids"] + [pad] * (width - len(r["ids"])) for r in rows])  # (B, T) right-padded
    att = torch.tensor([[1] * len(r["ids"]) + [0] * (width - len(r["ids"])) for r in rows])
    # label at position t is token t+1, counted only inside the target's continuation
    lab = torch.full_like(ids, -100)
    for b, r in enumerate(rows):
        if "labels" in r:  # teacher-forced text: the target's greedy next token at every position
            lab[b, :len(r["labels"])] = torch.tensor(r["labels"])
        else:  # the target's own continuation: its next token is its greedy choice
            lab[b, r["start"] - 1:len(r["ids"]) - 1] = ids[b, r["start"]:len(r["ids"])]
    lut = torch.full((draft.model.config.vocab_size,), -100, dtype=torch.long)
    lut[draft.vocab] = torch.arange(len(draft.vocab))
    lab = torch.where(lab >= 0, lut[lab.clamp(min=0)], lab)  # target ids -> draft-vocab ids; unseen -> ignored
    model = draft.model.train() if torch.is_grad_enabled() else draft.model.eval()
    hidden = model.model(input_ids=ids, attention_mask=att).last_hidden_state  # (B, T, d)
    keep = lab >= 0
    logits = hidden[keep] @ draft.head_weight().T  # (n, V')
    loss = F.cross_entropy(logits, lab[keep])
    acc = (logits.argmax(-1) == lab[keep]).float().mean().item()
    draft.model.eval()
    return loss, acc


FORMAT = "nblib.cast.draft/2"      # what save writes by default: 2-D weights int8 + fp16 scales, the rest fp16
FORMAT_FP16 = "nblib.cast.draft/1"  # every tensor fp16 (save(..., quantize=False)); load reads both
SCALE = ".scale"                    # the fp16 scales of int8 tensor <name> are stored as <name>.scale


def quantize(w: torch.Tensor, group: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantisation of a 2-D matrix: (q int8 in [-127, 127], fp16 scales), w ~= q * scale.

    One scale per output row (shape (rows,)), or with `group` one per row and run of `group` input columns
    (shape (rows, columns // group)). Each scale is the fp16 value at or just above the block's max |w| / 127,
    so nothing is clipped and every element's error is at most half its scale.
    """
    from .. import checks

    if w.dim() != 2 or not w.is_floating_point():
        raise ValueError(f"quantize takes a 2-D float matrix, got {w.dim()}-D {w.dtype}")
    rows, cols = w.shape
    if group is not None:
        group = checks.whole("group", group, low=1)
        if cols % group:
            raise ValueError(f"group {group} does not divide the matrix's {cols} columns")
    g = cols if group is None else group
    blocks = w.detach().float().reshape(rows, cols // g, g)
    amax = blocks.abs().amax(-1)  # (rows, n_groups)
    if not torch.isfinite(amax).all() or (amax / 127 > torch.finfo(torch.float16).max).any():
        raise ValueError("quantize: the matrix has inf/NaN or values too large for an fp16 scale")
    scale = (amax / 127).half()
    short = scale.float() * 127 < amax  # fp16 rounding went below max|w|/127: take the next fp16 up
    scale = torch.where(short, (scale.view(torch.int16) + 1).view(torch.float16), scale)
    q = torch.round(blocks / torch.where(scale == 0, 1.0, scale.float())[..., None]).clamp(-127, 127)
    q = q.to(torch.int8).reshape(rows, cols)
    return q, (scale[:, 0] if group is None else scale).contiguous()


def dequantize(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The matrix an int8 tensor and its scales (per row (rows,), or per group (rows, n_groups)) stand for."""
    if q.dtype != torch.int8 or q.dim() != 2:
        raise ValueError(f"dequantize takes a 2-D int8 tensor, got {q.dim()}-D {q.dtype}")
    s = scale.float().reshape(len(scale), -1) if scale.dim() in (1, 2) else None
    if s is None or s.shape[0] != q.shape[0] or q.shape[1] % s.shape[1]:
        raise ValueError(f"scales of shape {tuple(scale.shape)} do not fit an int8 matrix of shape {tuple(q.shape)}")
    g = q.shape[1] // s.shape[1]
    return (q.float().reshape(q.shape[0], s.shape[1], g) * s[..., None]).reshape(q.shape).to(dtype)


def quantize_state(sd: dict, group: int | None = None) -> dict:
    """A checkpoint's tensors with every 2-D float matrix as int8 `<name>` + fp16 `<name>.scale`; the rest fp16."""
    out = {}
    for k, v in sd.items():
        if k.endswith(SCALE):
            raise ValueError(f"a draft parameter is named {k!r}; names ending in {SCALE!r} are reserved for scales")
        if v.is_floating_point() and v.dim() == 2:
            out[k], out[k + SCALE] = quantize(v, group)
        else:
            out[k] = v.half() if v.is_floating_point() else v
    return {k: v.contiguous().cpu() for k, v in out.items()}


def dequantize_state(sd: dict, where: Path) -> dict:
    """The fp32 tensors of a format-/2 checkpoint: each int8 `<name>` times its `<name>.scale`; unpaired: an error."""
    scales = {k[:-len(SCALE)]: v for k, v in sd.items() if k.endswith(SCALE)}
    ints = {k for k, v in sd.items() if v.dtype == torch.int8}
    if set(scales) != ints:
        raise ValueError(f"{where}: int8 tensors and their {SCALE!r} scales do not pair up: int8 without scales "
                         f"{sorted(ints - set(scales))}, scales without an int8 tensor {sorted(set(scales) - ints)}")
    out = {}
    for k, v in sd.items():
        if k.endswith(SCALE):
            continue
        if k in ints:
            try:
                out[k] = dequantize(v, scales[k])
            except ValueError as e:
                raise ValueError(f"{where}: tensor {k!r}: {e}") from None
        else:
            out[k] = v.float() if v.is_floating_point() else v
    return out


def files(path: Path | str) -> tuple[Path, Path]:
    """The pair a draft checkpoint is stored as: (<stem>.safetensors tensors, <stem>.json config and metadata)."""
    path = Path(path)
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def write_checkpoint(sd: dict, path: Path | str, fmt: str, config: dict, info: dict) -> Path:
    """Write tensors `sd` as <stem>.safetensors and config + `info` + the tensors' sha256 as <stem>.json."""
    import hashlib
    import json

    from safetensors.torch import save_file

    tensors_path, json_path = files(path)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(tensors_path), metadata={"format": fmt})
    desc = {"format": fmt, "config": config, **info, "tensors_file": tensors_path.name,
            "tensors_sha256": hashlib.sha256(tensors_path.read_bytes()).hexdigest()}
    json_path.write_text(json.dumps(desc, indent=1) + "\n")
    return tensors_path


def read_checkpoint(path: Path | str, fmt: str | tuple[str, ...], kind: str,
                    hint: str) -> tuple[dict, dict, Path, Path]:
    """(description, tensors, tensors path, json path) of a saved pair: both exist, the format and sha256 match.

    fmt: the format string the description must carry, or a tuple of accepted ones (info["format"] says which).
    kind names the checkpoint in errors ("draft", "feature-draft"); hint says how to rebuild or what else to use.
    """
    import hashlib
    import json

    from safetensors.torch import load_file

    tensors_path, json_path = files(path)
    for f in (tensors_path, json_path):
        if not f.exists():
            raise FileNotFoundError(f"no {kind} checkpoint at {f} (a {kind} is {tensors_path.name} + "
                                    f"{json_path.name}); {hint}")
    info = json.loads(json_path.read_text())
    formats = (fmt,) if isinstance(fmt, str) else tuple(fmt)
    if info.get("format") not in formats:
        want = repr(formats[0]) if len(formats) == 1 else "one of " + ", ".join(map(repr, formats))
        raise ValueError(f"{json_path} is not a {kind} checkpoint description (format {info.get('format')!r}, "
                         f"expected {want}); {hint}")
    sha = hashlib.sha256(tensors_path.read_bytes()).hexdigest()
    if info.get("tensors_sha256") not in (None, sha):
        raise ValueError(f"{tensors_path} does not match {json_path} (sha256 {sha}, recorded "
                         f"{info['tensors_sha256']}): the two files come from different saves")
    return info, load_file(str(tensors_path)), tensors_path, json_path


def check_vocab(vocab: torch.Tensor | None, vocab_size: int, where: Path) -> None:
    """A stored draft vocabulary must be a 1-D int64 list of token ids below vocab_size."""
    if vocab is not None and (vocab.dtype != torch.int64 or vocab.dim() != 1 or
                              (vocab.numel() and (int(vocab.min()) < 0 or int(vocab.max()) >= vocab_size))):
        raise ValueError(f"the draft vocabulary in {where} is not a list of token ids below {vocab_size}")


def check_state(sd: dict, want: dict, kind: str, tensors_path: Path, json_path: Path, optional=lambda k: False) -> None:
    """One error listing missing, unexpected and mis-shaped tensors of a checkpoint against its model."""
    missing = sorted(k for k in want if k not in sd and not optional(k))
    unexpected = sorted(k for k in sd if k not in want)
    shapes = [f"{k}: {tuple(v.shape)} vs {tuple(want[k].shape)}" for k, v in sd.items()
              if k in want and v.shape != want[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{kind} checkpoint {tensors_path} does not match its config {json_path}: missing "
                         f"{missing}, unexpected {unexpected}, shapes (file vs config) {shapes}")


def save(draft: Draft, path: Path | str, meta: dict | None = None, quantize: bool = True,
         group: int | None = None) -> Path:
    """Save a draft as <stem>.safetensors + <stem>.json and return the .safetensors path.

    quantize=True (format /2): every 2-D weight matrix as int8 `<name>` with fp16 scales `<name>.scale`, one per
    output row (or, with `group`, per row and run of `group` input columns); norms stay fp16. quantize=False
    (format /1): every tensor fp16. The safetensors file also holds the vocabulary (int64 "vocab"); the JSON holds
    the config and metadata. The shared embeddings are not stored. No pickle anywhere.
    """
    import json

    sd = {k: v.detach().float().cpu() for k, v in draft.model.state_dict().items()
          if "embed_tokens" not in k and "lm_head" not in k}
    return _write(sd, draft.vocab, json.loads(draft.model.config.to_json_string(use_diff=False)), path, meta or {},
                  quantize, group)


def quantize_checkpoint(src: Path | str, dst: Path | str, group: int | None = None) -> Path:
    """Rewrite an fp16 (format /1) draft pair as an int8 (format /2) pair at dst; returns dst's .safetensors path.

    Config and metadata carry over; the metadata gains `quantized_from` (the source file's name and sha256).
    """
    import hashlib

    info, sd, tensors_path, _ = read_checkpoint(src, FORMAT_FP16, "fp16 draft",
                                                "write one with `python scripts/train_draft.py --fp16`")
    if files(dst)[0].resolve() == tensors_path.resolve():
        raise ValueError(f"quantize_checkpoint would overwrite its input {tensors_path}: pass another dst")
    vocab = sd.pop("vocab", None)
    sha = hashlib.sha256(tensors_path.read_bytes()).hexdigest()
    meta = {**info.get("meta", {}), "quantized_from": f"{tensors_path.name} (format {FORMAT_FP16}, fp16, sha256 {sha})"}
    return _write({k: v.float() for k, v in sd.items()}, vocab, info["config"], dst, meta, True, group)


def _write(sd: dict, vocab: torch.Tensor | None, config: dict, path: Path | str, meta: dict, quantize: bool,
           group: int | None) -> Path:
    """Write float tensors `sd` (+ the vocabulary) as format /2 (quantize) or /1 with their description."""
    if "vocab" in sd:
        raise ValueError("a draft parameter is named 'vocab', which the checkpoint reserves for the vocabulary")
    info = {"parameters": sum(v.numel() for v in sd.values())}
    if quantize:
        sd = quantize_state(sd, group)
        info["dtype"] = "int8 2-D weights (symmetric) with fp16 scales; norms float16"
        info["quantization"] = {"scheme": "symmetric int8, w ~= q * scale, q in [-127, 127]",
                                "weights": "every 2-D matrix; 1-D tensors (norms) stay fp16",
                                "scales": "fp16, one per output row" if group is None else
                                          f"fp16, one per output row and group of {group} input columns",
                                "group": group, "dequantized_by": "nblib.cast.draft.load, into the target's dtype"}
    else:
        if group is not None:
            raise ValueError("group is a quantisation setting: pass quantize=True with it")
        sd = {k: v.half().contiguous() for k, v in sd.items()}
        info["dtype"] = "float16"
    if vocab is not None:
        sd["vocab"] = vocab.detach().to(torch.int64).contiguous().cpu()
    info.update({"draft_vocab": None if vocab is None else int(vocab.numel()),
                 "not_stored": "the embedding / LM-head matrix: the target's, re-attached by nblib.cast.draft.load",
                 "meta": meta})
    return write_checkpoint(sd, path, FORMAT if quantize else FORMAT_FP16, config, info)


def load(path: Path | str, target) -> Draft:
    """Load a saved draft (format /2 int8 or /1 fp16) on the target's device and dtype, embeddings shared.

    int8 weights are dequantised (q * scale, in fp32) and then cast to the target's dtype.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    info, sd, tensors_path, json_path = read_checkpoint(path, (FORMAT, FORMAT_FP16), "draft",
                                                        "build it with `python scripts/train_draft.py`")
    vocab = sd.pop("vocab", None)
    if info["format"] == FORMAT:
        sd = dequantize_state(sd, tensors_path)
    elif any(not v.is_floating_point() for v in sd.values()):
        raise ValueError(f"{tensors_path} holds integer tensors, but {json_path} says format {FORMAT_FP16!r} (fp16)")
    cfg_dict = dict(info["config"])
    cfg = AutoConfig.for_model(cfg_dict.pop("model_type"), **cfg_dict)
    if cfg.vocab_size != target.config.vocab_size:
        raise ValueError(f"draft vocab size {cfg.vocab_size} != target's {target.config.vocab_size}")
    check_vocab(vocab, cfg.vocab_size, tensors_path)
    p = next(target.parameters())
    model = AutoModelForCausalLM.from_config(cfg, dtype=p.dtype)
    _share_embeddings(model, target)
    check_state(sd, model.state_dict(), "draft", tensors_path, json_path,
                optional=lambda k: "embed" in k or "lm_head" in k)
    model.load_state_dict({k: v.to(p.dtype) for k, v in sd.items()}, strict=False)
    return Draft(model.to(p.device).eval(), None if vocab is None else vocab.to(p.device))


def default_path() -> Path:
    """The shipped draft checkpoint for SmolLM2: data/cast/draft.safetensors (+ data/cast/draft.json)."""
    return Path(__file__).resolve().parents[2] / "data" / "cast" / "draft.safetensors"
