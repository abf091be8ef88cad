"""Routed generation: endpoints exact, monotone in the threshold, equal to re-running the author, honest FLOPs."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import steer
from nblib import taskworld as tw
from nblib.cost import measure_flops, transformer_flops
from nblib.steer.engine import ConfidenceDecider, Router, RouterConfig
from nblib.taskworld.generation import generate


def _router(models, small="tiny", large="large", config=steer.TASKWORLD_READ):
    return Router(models[small], models[large], steer.TaskVocab(), config=config)


def test_endpoints_equal_small_only_and_large_only(task_models, test_problems):
    prompts = [tw.prompt_of(p) for p in test_problems]
    runs = _router(task_models).run(prompts, [0.0, 1.0], batch_size=16)
    room = [steer.TASKWORLD.max_tokens - len(tw.encode(p)) for p in prompts]   # the routed run's context cap
    for name, rr in (("tiny", runs[0]), ("large", runs[1])):
        ref = [generate(task_models[name], [p], max_new_tokens=n)[0] for p, n in zip(prompts, room, strict=True)]
        assert [r.text for r in rr] == [g.text for g in ref]
        assert [r.flops for r in rr] == [g.flops for g in ref]  # the same FLOPs, to the unit
    assert all(r.large_steps == 0 and r.flops_of("large") == 0 for r in runs[0])
    assert all(r.flops_of("small") == 0 and r.large_share == 1.0 for r in runs[1])  # small never invoked


def test_grid_is_monotone_in_the_threshold(task_models, test_problems):
    prompts = [tw.prompt_of(p) for p in test_problems]
    cal = steer.Calibrator().fit(np.r_[np.random.default_rng(0).normal(0.45, 0.1, 200),
                                       np.random.default_rng(1).normal(0.95, 0.03, 200)])
    taus = [0.0, 0.05, 0.2, 0.5, 0.8, 0.95, 0.999, 1.0]
    runs = _router(task_models).run(prompts, taus, ConfidenceDecider(cal))
    share = [np.mean([r.large_share for r in rr]) for rr in runs]
    flops = [np.mean([r.flops for r in rr]) for rr in runs]
    assert share[0] == 0.0 and share[-1] == 1.0
    assert all(a <= b + 1e-12 for a, b in zip(share, share[1:], strict=False)), share
    # below 1 the small model reads every step, so FLOPs grow with the share; at 1 it is short-circuited
    assert all(a <= b for a, b in zip(flops[:-1], flops[1:-1], strict=False)), flops


def test_exogenous_routing_nests_the_large_steps(task_models, test_problems):
    """With a routing value that does not depend on the text, a higher threshold hands over a superset of steps."""
    prompts = [tw.prompt_of(p) for p in test_problems[:16]]
    taus = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    runs = _router(task_models).run(prompts, taus, steer.RandomDecider(seed=3))
    for i in range(len(prompts)):
        sets = [{s.index for s in rr[i].steps if s.author == "large"} for rr in runs]
        n = min(len(rr[i].steps) for rr in runs)
        for a, b in zip(sets, sets[1:], strict=False):
            assert {k for k in a if k < n} <= b


def test_routed_steps_equal_rerunning_the_author(task_models, test_problems):
    prompts = [tw.prompt_of(p) for p in test_problems[:12]]
    cal = steer.Calibrator().fit(np.linspace(0, 1, 50) ** 2)
    runs = _router(task_models).run(prompts, [0.3], ConfidenceDecider(cal))[0]
    seen = {"small": 0, "large": 0}
    for p, r in zip(prompts, runs, strict=False):
        prefix = p
        for s in r.steps:
            model = task_models["tiny" if s.author == "small" else "large"]
            again = generate(model, [prefix], max_new_tokens=24, stop_at_newline=True)[0]
            assert again.text == s.text, (prefix, s.author)
            prefix += s.text
            seen[s.author] += 1
        assert prefix == p + r.text  # the steps concatenate to the output
    assert seen["small"] and seen["large"]  # both models wrote steps


def test_confidence_after_a_handover_reads_the_fresh_context(task_models, test_problems):
    """The small model's score at a boundary equals a fresh forward of it over the whole context so far."""
    import torch

    cfg = RouterConfig("max_prob", 1, "first")
    r = _router(task_models, config=cfg).run([tw.prompt_of(test_problems[0])], [0.999999],
                                            ConfidenceDecider(steer.confidence.Identity()))[0][0]
    assert r.large_steps >= 1
    prefix = tw.prompt_of(test_problems[0])
    for s in r.steps:
        ids = torch.tensor([tw.encode(prefix)])
        with torch.no_grad():
            logits = task_models["tiny"](input_ids=ids).logits[0, -1]
        assert s.score == pytest.approx(float(steer.score_logits(logits, "max_prob")), abs=1e-5)
        prefix += s.text


def test_analytic_flops_match_torch_flop_counter(task_models, test_problems):
    router = _router(task_models, config=RouterConfig("max_prob", 1, "first"))
    prompt = tw.prompt_of(test_problems[1])
    run, measured = measure_flops(lambda: router.generate(prompt, 0.5, steer.RandomDecider(0)))
    assert run.large_steps and run.large_steps < len(run.steps)
    assert measured == pytest.approx(run.flops, rel=0.15)


def test_draft_tokens_thrown_away_still_count(task_models, test_problems):
    prompts = [tw.prompt_of(p) for p in test_problems[:8]]
    r0, r1 = _router(task_models).run(prompts, [0.0, 0.999999], ConfidenceDecider(steer.confidence.Identity()))
    wasted = [e for r in r1 for e in r.events if e.wasted]
    assert wasted and all(e.model == "small" and e.kind == "decode" for e in wasted)
    # the large-routed run pays the small model's drafts on top of large-only's tokens
    assert sum(r.flops_of("small") for r in r1) > 0


def test_threshold_out_of_range_is_one_clear_error(task_models):
    router = _router(task_models)
    for bad in (-0.1, 1.5, float("nan"), "0.5", None):
        with pytest.raises(ValueError, match="threshold"):
            router.run(["47,+8\n"], [bad])


def test_hf_tokenizer_path_with_tiny_random_models(make_tiny_llama, char_tokenizer):
    """The same engine over Hugging Face models and a Hugging Face tokenizer."""
    import torch

    small, large = make_tiny_llama(seed=1), make_tiny_llama(layers=3, seed=2)
    prompt = "12+3="
    ids = torch.tensor([char_tokenizer.encode(prompt)])
    with torch.no_grad():  # the delimiter: whatever the large model writes first, so steps do end at it
        first = char_tokenizer.decode([int(large(input_ids=ids).logits[0, -1].argmax())])
    fmt = steer.StepFormat(first, answer_marker=None, max_steps=3, max_step_tokens=6, max_tokens=64)
    router = Router(small, large, steer.HFVocab(char_tokenizer, fmt), fmt, RouterConfig("max_prob", 1, "first"))
    r0, r1 = router.run([prompt], [0.0, 1.0])
    ref = generate_hf(large, char_tokenizer, prompt, len(r1[0].steps[0].ids))
    assert r1[0].steps[0].text == ref and r1[0].steps[0].ended == "delimiter"
    assert all(s.author == "small" for s in r0[0].steps) and r0[0].flops_of("large") == 0
    assert all(s.author == "large" for s in r1[0].steps) and r1[0].flops_of("small") == 0


def generate_hf(model, tok, prompt, n):
    """Greedy text of n new tokens with transformers' generate."""
    import torch

    ids = torch.tensor([tok.encode(prompt)])
    out = model.generate(input_ids=ids, max_new_tokens=n, do_sample=False, pad_token_id=0, eos_token_id=None)
    return tok.decode(out[0, ids.shape[1]:].tolist())


@pytest.mark.slow
def test_two_chat_models_share_the_engine(smollm2):
    """The embedded SmolLM2 as both models: the routed text is the model's own greedy text at every threshold."""
    import dataclasses

    model, tok = smollm2
    fmt = dataclasses.replace(steer.BLANK_LINE, delimiter="\n", max_steps=2, max_step_tokens=48, max_tokens=256)
    router = steer.hf_router((model, tok), (model, tok), fmt=fmt)
    prompt = steer.chat_prompt(tok, "Add 12 and 30. Show the steps.")
    r0, r1 = (router.generate(prompt, t, steer.ConfidenceDecider()) for t in (0.0, 1.0))
    assert r0.text == r1.text and r0.large_steps == 0 and r1.large_steps == len(r1.steps)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=True).input_ids
    out = model.generate(ids, max_new_tokens=len(r1.steps[0].ids), do_sample=False)
    assert tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True) == r1.steps[0].text
