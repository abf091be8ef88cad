"""The text-classification data: BIG-bench multiemo (all_text_en), 4-way review sentiment, a committed subset.

`load_multiemo(split)` reads data/d2dmoe/multiemo_subset.jsonl (built by
scripts/d2dmoe_build_multiemo.py from the bigbench==1.0.0 sdist); `encode` turns
reviews into MiniLM word-piece batches cut to `max_len` tokens.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "d2dmoe"
MULTIEMO_FILE = DATA_DIR / "multiemo_subset.jsonl"
LABELS = ("negative", "neutral", "ambivalent", "positive")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Review:
    """One multiemo review: its text (cut to the committed length), gold label and index in the task."""

    text: str
    label: str
    index: int

    @property
    def y(self) -> int:
        """The label as a class id (position in LABELS)."""
        return LABELS.index(self.label)


def load_header(path: Path | str = MULTIEMO_FILE) -> dict:
    """The provenance header (first line) of the committed subset."""
    with open(path) as f:
        return json.loads(f.readline())


def load_multiemo(split: str = "train", n: int | None = None, path: Path | str = MULTIEMO_FILE) -> list[Review]:
    """The committed multiemo reviews of one split ('train' or 'test'), the first `n` of them when given."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with: python scripts/d2dmoe_build_multiemo.py")
    out = []
    with open(path) as f:
        f.readline()  # header
        for line in f:
            r = json.loads(line)
            if r["split"] == split:
                out.append(Review(r["text"], r["label"], int(r["index"])))
    return out[:n] if n is not None else out


def encode(tokenizer, reviews, max_len: int = 64, padding: str = "longest") -> dict[str, torch.Tensor]:
    """Tokenised batch {input_ids, attention_mask, labels} of reviews (or plain strings), cut to `max_len`.

    padding: 'longest' (to the batch's longest review) or 'max_length' (every review to `max_len` positions,
    as the official D2DMoE code tokenises CARER).
    """
    if padding not in ("longest", "max_length"):
        raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}")
    texts = [r.text if isinstance(r, Review) else str(r) for r in reviews]
    enc = tokenizer(texts, padding=padding, truncation=True, max_length=max_len, return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    if reviews and isinstance(reviews[0], Review):
        batch["labels"] = torch.tensor([r.y for r in reviews])
    return batch
