"""Router training: FFN inputs of the frozen model, true expert norms as targets, MSE (nblib.d2dmoe.finetune)."""
import torch

from nblib import d2dmoe as D
from nblib.d2dmoe import finetune as F


def test_routers_learn_the_expert_norms_and_beat_random_routing(make_bert, run):
    model = make_bert(seed=2)
    layers = D.convert_model(model, 16)
    ids = torch.randint(1, 50, (40, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[:, 9:] = 0  # padding is dropped from the router data
    batches = [{"input_ids": ids[i:i + 10], "attention_mask": mask[i:i + 10]} for i in range(0, 40, 10)]
    inputs = F.collect_ffn_inputs(model, layers, batches, lambda m, b: run(m, b["input_ids"]))
    assert inputs[0].shape == (40 * 9, 32)
    hist = F.train_routers(layers, inputs, steps=300, batch=64, lr=3e-3, progress=False)
    assert hist.records[-1]["loss"] < 0.5 * hist.records[0]["loss"]
    # the trained router's top-4 experts carry more of the true output norm than 4 random ones
    x = inputs[0]
    t = layers[0].expert_norms(x)
    top = t.gather(1, layers[0].router(x).topk(4, dim=1).indices).sum(1).mean()
    rand = t[:, torch.randperm(16)[:4]].sum(1).mean()
    assert top > 1.2 * rand
