"""Compact fine-tuning deltas: LoRA factors + full tensors, merged at load (nblib.d2dmoe.lora)."""
import pytest
import torch

from nblib.d2dmoe import lora


def test_delta_applied_to_a_fresh_base_gives_the_trained_model(make_bert, run):
    model = make_bert()
    fresh = make_bert()
    names = {"encoder.layer.0.intermediate.dense": 4, "encoder.layer.1.output.dense": 2}
    lora.add_lora(model, names)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
        model.encoder.layer[0].output.LayerNorm.bias.fill_(0.3)
    ids = torch.randint(1, 50, (2, 7))
    trained = run(model, ids)
    state = lora.delta_state(model, ["encoder.layer.0.output.LayerNorm.bias"], dtype=torch.float32)
    assert set(state) == {"lora.encoder.layer.0.intermediate.dense.A", "lora.encoder.layer.0.intermediate.dense.B",
                          "lora.encoder.layer.1.output.dense.A", "lora.encoder.layer.1.output.dense.B",
                          "full.encoder.layer.0.output.LayerNorm.bias"}
    lora.apply_delta(fresh, state)
    torch.testing.assert_close(run(fresh, ids), trained, atol=1e-5, rtol=1e-5)
    lora.merge_all(model)
    assert isinstance(model.encoder.layer[0].intermediate.dense, torch.nn.Linear)
    torch.testing.assert_close(run(model, ids), trained, atol=1e-5, rtol=1e-5)


def test_delta_for_another_model_is_a_clear_error(make_bert):
    with pytest.raises(ValueError, match="has no parameter"):
        lora.apply_delta(make_bert(), {"full.nope.weight": torch.zeros(1)})
