"""taskworld.generate (transformers' model.generate) gives what the earlier hand-written decoding loop gave.

`reference_generate` below is a FROZEN COPY of the hand-written batched greedy
loop that nblib/taskworld/generation.py had before it moved to `model.generate`
(left padding, explicit position ids, a DynamicCache, finished rows fed <pad>
with their mask off). It is the reference only: do not change it, and do not
use it outside this test. On the committed task models, for mixed-length
prompts in one batch, the two must agree on token ids, text, prompt length and
FLOPs exactly, and on log-probs and max logits to 1e-5.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from nblib import taskworld
from nblib.taskworld.generation import Generation, generation_flops
from nblib.taskworld.models import EOS, NEWLINE, PAD, decode, encode, shape_of


# ----------------------------------------------------------------------------- frozen reference (do not edit)
@torch.no_grad()
def reference_generate(model, prompts: Sequence[str], max_new_tokens: int = 64, stop_at_newline: bool = False,
                       batch_size: int = 256, bos: bool = True) -> list[Generation]:
    """FROZEN COPY of the previous hand-written greedy decoding loop (the reference for this test)."""
    from transformers import DynamicCache

    shape = shape_of(model)
    dev = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    results: dict[int, Generation] = {}
    for b0 in range(0, len(order), batch_size):
        idx = order[b0:b0 + batch_size]
        enc = [encode(prompts[i], bos=bos) for i in idx]
        width = max(len(e) for e in enc)
        x = torch.full((len(enc), width), PAD, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for r, e in enumerate(enc):
            x[r, width - len(e):] = torch.tensor(e)
            mask[r, width - len(e):] = 1
        x, mask = x.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=model.config)
        logits = model(input_ids=x, attention_mask=mask, position_ids=pos, cache=cache,
                       use_cache=True, logits_to_keep=1).logits[:, -1].float()  # (B, V)
        n = len(enc)
        toks = [[] for _ in range(n)]
        lps = [[] for _ in range(n)]
        mls = [[] for _ in range(n)]
        done = torch.zeros(n, dtype=torch.bool, device=dev)
        for step in range(max_new_tokens):
            logp = torch.log_softmax(logits, -1)
            best = logp.argmax(-1)  # (B,)
            lp = logp.gather(1, best[:, None])[:, 0]
            ml = logits.max(-1).values
            b_l, lp_l, ml_l, d_l = best.tolist(), lp.tolist(), ml.tolist(), done.tolist()
            for r in range(n):
                if not d_l[r]:
                    toks[r].append(b_l[r])
                    lps[r].append(lp_l[r])
                    mls[r].append(ml_l[r])
            stop = best == EOS
            if stop_at_newline:
                stop |= best == NEWLINE
            done = done | stop
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            nxt = torch.where(done, torch.full_like(best, PAD), best)
            mask = torch.cat([mask, (~done).long()[:, None]], 1)
            pos = pos[:, -1:] + 1
            logits = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, cache=cache,
                           use_cache=True).logits[:, -1].float()
        for r, i in enumerate(idx):
            results[i] = Generation(prompts[i], decode(toks[r]), toks[r], lps[r], mls[r], len(enc[r]),
                                    generation_flops(shape, len(enc[r]), len(toks[r])))
    return [results[i] for i in range(len(prompts))]
# ----------------------------------------------------------------------------- end of the frozen reference


@pytest.fixture(scope="module")
def held_out():
    return taskworld.problems.problems("test", 40)


@pytest.fixture(scope="module", params=["tiny", "large"])
def model(request):
    return taskworld.load_model(request.param)


def step_prompts(problems) -> list[str]:
    """Step-level prompts: the problem and the gold steps before each step (lengths vary a lot)."""
    return [taskworld.prompt_of(p) + "".join(line + "\n" for line in p.step_lines[:i])
            for p in problems for i in range(p.n_steps + 1)]


def assert_same(new: list[Generation], ref: list[Generation]) -> None:
    assert len(new) == len(ref)
    for a, b in zip(new, ref, strict=True):
        assert a.prompt == b.prompt
        assert a.tokens == b.tokens, a.prompt
        assert a.text == b.text
        assert a.prompt_tokens == b.prompt_tokens
        assert a.flops == b.flops
        assert len(a.logprobs) == len(a.max_logits) == len(a.tokens)
        np.testing.assert_allclose(a.logprobs, b.logprobs, rtol=0, atol=1e-5)
        np.testing.assert_allclose(a.max_logits, b.max_logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch_size", [256, 7])
def test_solutions_equal_the_hand_written_loop(model, held_out, batch_size):
    prompts = [taskworld.prompt_of(p) for p in held_out]
    new = taskworld.generate(model, prompts, max_new_tokens=80, batch_size=batch_size)
    assert_same(new, reference_generate(model, prompts, max_new_tokens=80, batch_size=batch_size))
    assert all(g.tokens[-1] == EOS for g in new)  # every solution ran to <eos>
    assert [g.text for g in taskworld.solve(model, held_out)] == [g.text for g in new]


def test_step_prompts_stopping_at_a_newline_equal_the_hand_written_loop(model, held_out):
    prompts = step_prompts(held_out)
    assert len({len(p) for p in prompts}) > 10  # mixed lengths share a batch (left padding)
    new = taskworld.generate(model, prompts, max_new_tokens=16, stop_at_newline=True, batch_size=256)
    assert_same(new, reference_generate(model, prompts, max_new_tokens=16, stop_at_newline=True, batch_size=256))
    ends = {g.tokens[-1] for g in new}
    assert NEWLINE in ends and EOS in ends  # steps end at the newline, the answer line at <eos>


def test_sequences_cut_by_the_token_limit_equal_the_hand_written_loop(model, held_out):
    prompts = step_prompts(held_out[:12])
    new = taskworld.generate(model, prompts, max_new_tokens=5, batch_size=256)
    assert_same(new, reference_generate(model, prompts, max_new_tokens=5, batch_size=256))
    assert max(len(g.tokens) for g in new) == 5


def test_bad_token_limit_is_a_clear_error(held_out):
    with pytest.raises(ValueError, match="max_new_tokens must be a whole number >= 1"):
        taskworld.generate(taskworld.load_model("tiny"), [taskworld.prompt_of(held_out[0])], max_new_tokens=0)
