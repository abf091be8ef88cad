"""Activation-sparsity measures, the penalty and its schedule, sparsity fine-tuning (nblib.d2dmoe.sparsity)."""
import pytest
import torch

from nblib import d2dmoe as D
from nblib.d2dmoe import sparsity as S


def test_square_hoyer_one_hot_constant_and_scale_invariance():
    one_hot = torch.zeros(10)
    one_hot[3] = 2.5
    assert S.square_hoyer(one_hot).item() == pytest.approx(1.0)
    assert S.square_hoyer(torch.full((10,), 0.7)).item() == pytest.approx(10.0)
    v = torch.rand(4, 20)
    torch.testing.assert_close(S.square_hoyer(3.0 * v), S.square_hoyer(v))


def test_penalty_weight_schedules():
    assert S.penalty_weight(0, 100, 1e-3, "linear") == 0.0
    assert S.penalty_weight(50, 100, 1e-3, "linear") == pytest.approx(5e-4)
    assert S.penalty_weight(50, 100, 1e-3, "linear_warmup") == pytest.approx(1e-3)
    assert S.penalty_weight(25, 100, 1e-3, "linear_warmup") == pytest.approx(5e-4)
    assert S.penalty_weight(3, 100, 1e-3, "constant") == 1e-3
    with pytest.raises(ValueError, match="schedule must be one of"):
        S.penalty_weight(0, 1, 1.0, "cosine")


def test_penalty_ignores_masked_tokens():
    h = torch.ones(1, 4, 6)
    h[0, 2:] = 100.0
    mask = torch.tensor([[1, 1, 0, 0]])
    assert S.sparsity_penalty([h], "l1", mask).item() == pytest.approx(6.0)
    with pytest.raises(ValueError, match="penalty must be one of"):
        S.sparsity_penalty([h], "l2")


def test_capture_sees_the_hidden_activations_of_each_shape(tiny, run):
    kind, model, ids = tiny
    with D.capture_activations(model, detach=True) as acts:
        run(model, ids)
    assert len(acts) == 2 and acts[0][0].shape == (3, 11, 64)
    assert (acts[0][0] == 0).float().mean() > 0.2  # ReLU gives exact zeros (gated: gate <= 0)


def test_sparsity_finetuning_raises_the_zero_fraction(make_bert, run):
    model = make_bert(seed=3)
    ids = torch.randint(1, 50, (8, 12), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def fwd(m, b):
        return run(m, b["input_ids"])

    before = D.activation_stats(model, [batch], fwd)["zero_fraction"]
    target = run(model, ids).detach()

    def task_loss(_step):
        return torch.nn.functional.mse_loss(run(model, ids), target), None

    hist = S.sparsify_finetune(model, task_loss, model, 40, lr=3e-3, penalty="l1", weight=0.05,
                               weight_schedule="constant", progress=False)
    after = D.activation_stats(model, [batch], fwd)["zero_fraction"]
    assert hist.steps == 40 and hist.records[-1]["sparsity"] < hist.records[0]["sparsity"]
    assert after > before + 0.05
