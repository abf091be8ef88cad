"""Step delimiting: what ends a reasoning step, and the vocabularies that turn steps into token ids.

A `StepFormat` says what ends a step (a line in the task world, a blank line or a
"Step k:" line for chat models), what marks the final answer, and the caps. A
vocabulary adapter (`TaskVocab` for the task world's character tokenizer,
`HFVocab` for any Hugging Face tokenizer) encodes text, decodes ids and says
when a step's tokens end it. Two models routed together must share one of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


class DelimiterNeverOccurs(ValueError):
    """The step delimiter cannot be written by the model, or never occurred in what it wrote."""


class TokenizerMismatch(ValueError):
    """Two models routed together do not share a tokenizer."""


@dataclass(frozen=True)
class StepFormat:
    """What ends a step, what marks the answer, and the caps of a routed generation."""

    delimiter: str = "\n"            # a step ends with this text (the task world: one step per line)
    answer_marker: str | None = "#"  # a step starting with it is the final answer: stop after it
    step_prefix: str = ""            # written into the context before step k (e.g. "Step {k}: "), not generated
    max_steps: int = 12              # steps per problem (the answer line counts as one)
    max_step_tokens: int = 24        # tokens per step before it is cut
    max_tokens: int = 128            # context length (prompt + output) at which a generation stops

    def __post_init__(self):
        if not isinstance(self.delimiter, str) or not self.delimiter:
            raise ValueError(f"the step delimiter must be a non-empty string, got {self.delimiter!r}")
        for name in ("max_steps", "max_step_tokens", "max_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.step_prefix and "{k}" not in self.step_prefix and "{" in self.step_prefix:
            raise ValueError(f"step_prefix may only use the field {{k}}, got {self.step_prefix!r}")

    def prefix(self, k: int) -> str:
        """The text written before step k (1-based), '' when the format has none."""
        return self.step_prefix.format(k=k) if self.step_prefix else ""

    def is_answer(self, step_text: str) -> bool:
        """True when the step is the final-answer line."""
        return bool(self.answer_marker) and step_text.strip().startswith(self.answer_marker)

    def split(self, text: str) -> list[str]:
        """Cut a finished text into its steps (the delimiter stays with the step that it ends)."""
        if not text:
            return []
        parts = text.split(self.delimiter)
        out = [p + self.delimiter for p in parts[:-1]]
        return out + ([parts[-1]] if parts[-1] else [])


TASKWORLD = StepFormat(max_tokens=192)   # one step per line, "#answer"; 192: the v2 models' context (hard problems)
BLANK_LINE = StepFormat("\n\n", answer_marker=None, max_steps=16, max_step_tokens=128, max_tokens=2048)
NUMBERED = StepFormat("\n", answer_marker="Answer:", step_prefix="Step {k}: ", max_steps=16,
                      max_step_tokens=96, max_tokens=2048)


class TaskVocab:
    """The task world's character tokenizer as a step vocabulary (<bos> first, <eos> ends a generation)."""

    def __init__(self, fmt: StepFormat = TASKWORLD):
        from ..taskworld import models as M

        self.fmt, self.name = fmt, "taskworld-chars"
        missing = sorted({c for c in fmt.delimiter + fmt.step_prefix.replace("{k}", "1") if c not in M.CHARS})
        if missing:
            raise DelimiterNeverOccurs(
                f"the step delimiter {fmt.delimiter!r} (or prefix {fmt.step_prefix!r}) uses {missing}, which the "
                f"task models can never write (their vocabulary is {M.CHARS!r}): use '\\n', the task world's step end")
        self.eos = {M.EOS}
        self.pad = M.PAD
        self.vocab_size = len(M.VOCAB)
        self.stop_ids = {M.VOCAB.index(fmt.delimiter)} if len(fmt.delimiter) == 1 else set()
        self._M = M

    def encode_prompt(self, prompt: str) -> list[int]:
        """Ids of a prompt, <bos> first."""
        return self._M.encode(prompt, bos=True)

    def encode(self, text: str) -> list[int]:
        """Ids of a piece of text (no <bos>)."""
        return self._M.encode(text, bos=False)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ids (special tokens dropped)."""
        return self._M.decode(ids)

    def ends_step(self, step_ids: Sequence[int]) -> bool:
        """True when the last id closes the step (the delimiter written)."""
        if step_ids[-1] in self.stop_ids:
            return True
        return not self.stop_ids and self.decode(step_ids).endswith(self.fmt.delimiter)

    def key(self) -> tuple:
        """What two models must share to be routed together."""
        return ("taskworld", self._M.VOCAB)


class HFVocab:
    """A Hugging Face tokenizer as a step vocabulary (chat models: "\\n\\n" or "Step k:" steps)."""

    def __init__(self, tokenizer, fmt: StepFormat = BLANK_LINE):
        self.tok, self.fmt, self.name = tokenizer, fmt, getattr(tokenizer, "name_or_path", "hf")
        eos = tokenizer.eos_token_id
        self.eos = {eos} if eos is not None else set()
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or 0)
        self.vocab_size = len(tokenizer)
        ids = tokenizer.encode(fmt.delimiter, add_special_tokens=False)
        if not ids or tokenizer.decode(ids) != fmt.delimiter:
            raise DelimiterNeverOccurs(f"the tokenizer {self.name} cannot write the step delimiter {fmt.delimiter!r}")
        self.stop_ids = {i for i in range(len(tokenizer)) if fmt.delimiter in tokenizer.decode([i])}

    def encode_prompt(self, prompt: str) -> list[int]:
        """Ids of a prompt (the tokenizer's special tokens as it adds them)."""
        return self.tok.encode(prompt, add_special_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Ids of a piece of text (no special tokens)."""
        return self.tok.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ids (special tokens dropped)."""
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def ends_step(self, step_ids: Sequence[int]) -> bool:
        """True when the step's text now contains the delimiter (a token holding it, or split over two)."""
        return step_ids[-1] in self.stop_ids or self.decode(step_ids[-4:]).find(self.fmt.delimiter) >= 0

    def key(self) -> tuple:
        """What two models must share to be routed together: the vocabulary itself."""
        return ("hf", tuple(sorted(self.tok.get_vocab().items())))


def check_same_tokenizer(a, b) -> None:
    """Raise TokenizerMismatch unless two vocabulary adapters encode text the same way."""
    if type(a) is not type(b) or a.key() != b.key():
        raise TokenizerMismatch(
            f"the two models use different tokenizers ({a.name} vs {b.name}); STEER hands one token stream back "
            "and forth, so it needs a pair that shares a tokenizer (e.g. two sizes of one family: "
            "SmolLM2-135M and SmolLM2-360M, or Qwen2.5-0.5B and Qwen2.5-7B)")
