"""Step formats, vocabularies, and the errors for a delimiter that never occurs or mismatched tokenizers."""
from __future__ import annotations

import pytest

from nblib import steer
from nblib import taskworld as tw


def test_formats_split_and_prefix():
    assert steer.TASKWORLD.split("1+2=3\n#3") == ["1+2=3\n", "#3"]
    assert steer.NUMBERED.prefix(2) == "Step 2: "
    assert steer.TASKWORLD.is_answer("#12") and not steer.TASKWORLD.is_answer("12+1=13")
    with pytest.raises(ValueError, match="delimiter"):
        steer.StepFormat("")
    with pytest.raises(ValueError, match="max_steps"):
        steer.StepFormat(max_steps=0)


def test_a_delimiter_the_task_models_cannot_write():
    with pytest.raises(steer.DelimiterNeverOccurs, match="can never write"):
        steer.TaskVocab(steer.StepFormat("Step"))


def test_a_delimiter_that_never_occurs_at_run_time(task_models):
    fmt = steer.StepFormat("\n\n", max_step_tokens=12)   # writable, but the task models never write a blank line
    router = steer.Router(task_models["tiny"], task_models["large"], steer.TaskVocab(fmt), fmt)
    with pytest.raises(steer.DelimiterNeverOccurs, match="never occurred"):
        router.run([tw.prompt_of(p) for p in tw.problems.problems("test", 4)], [0.0])


class FakeTok:
    """Just enough of a Hugging Face tokenizer for the vocabulary check."""

    def __init__(self, chars):
        self.chars, self.name_or_path = chars, f"fake-{chars[:4]!r}"
        self.eos_token_id, self.pad_token_id = 0, 0

    def __len__(self):
        return len(self.chars) + 1

    def encode(self, text, add_special_tokens=False):
        return [self.chars.index(c) + 1 for c in text if c in self.chars]  # unknown characters dropped

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.chars[i - 1] for i in ids if i > 0)

    def get_vocab(self):
        return {c: i + 1 for i, c in enumerate(self.chars)}


def test_two_tokenizers_must_match():
    fmt = steer.StepFormat("\n")
    a, b, c = (steer.HFVocab(FakeTok(s), fmt) for s in ("ab\n", "ab\n", "ba\n"))
    steer.steps.check_same_tokenizer(a, b)
    with pytest.raises(steer.TokenizerMismatch, match="different tokenizers"):
        steer.steps.check_same_tokenizer(a, c)
    with pytest.raises(steer.TokenizerMismatch):
        steer.steps.check_same_tokenizer(a, steer.TaskVocab())
    with pytest.raises(steer.DelimiterNeverOccurs):
        steer.HFVocab(FakeTok("ab"), fmt)
