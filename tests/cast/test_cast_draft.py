"""The draft model helpers (nblib.draft): init from the target, loss, save/load round trip; the shipped SmolLM2 draft."""
from __future__ import annotations

import pytest
import torch

from nblib import cast


def test_init_train_save_load_round_trip(tmp_path, prompts, tiny):
    T = tiny(0, layers=3)
    d = cast.draft.init_from_target(T, list(range(0, 97, 3)), layers=(0, 2))
    assert d.model.model.embed_tokens.weight is T.model.embed_tokens.weight  # shared, not copied
    assert not d.model.model.embed_tokens.weight.requires_grad
    rows = [{"ids": p + p, "start": len(p)} for p in prompts(4, lengths=(6, 9))]
    loss, acc = cast.draft.loss_on(d, rows)
    loss.backward()
    assert torch.isfinite(loss) and 0.0 <= acc <= 1.0
    assert d.model.model.layers[0].mlp.up_proj.weight.grad is not None
    with torch.no_grad():  # the checkpoint stores fp16: round the blocks the same way before comparing
        for name, q in d.model.named_parameters():
            if "embed" not in name:
                q.copy_(q.half().float())
    path = cast.draft.save(d, tmp_path / "d.safetensors")
    assert path == tmp_path / "d.safetensors" and (tmp_path / "d.json").exists()
    d2 = cast.draft.load(path, T)
    torch.testing.assert_close(d2.vocab, d.vocab)
    x = torch.tensor([prompts(1)[0]])
    with torch.no_grad():
        torch.testing.assert_close(d2.model(x).logits, d.model(x).logits, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="vocab size"):
        cast.draft.load(path, tiny(1, vocab=50))
    with pytest.raises(FileNotFoundError, match="train_draft.py"):
        cast.draft.load(tmp_path / "missing.safetensors", T)


def test_the_checkpoint_is_safetensors_plus_json(tmp_path, tiny):
    """No pickle: the tensors (vocabulary included) load with safetensors, the rest is JSON; bad pairs are clear errors."""
    import json

    from safetensors.torch import load_file, save_file

    T = tiny(0, layers=3)
    d = cast.draft.init_from_target(T, [1, 5, 9], layers=(0, 2))
    cast.draft.save(d, tmp_path / "d.pt", meta={"note": "x"})  # any suffix: the pair is <stem>.safetensors + .json
    sd = load_file(str(tmp_path / "d.safetensors"))
    assert sd["vocab"].dtype == torch.int64 and sd["vocab"].tolist() == [1, 5, 9]
    assert all(v.dtype == torch.float16 for k, v in sd.items() if k != "vocab")
    assert not any("embed" in k or "lm_head" in k for k in sd)
    info = json.loads((tmp_path / "d.json").read_text())
    assert info["config"]["num_hidden_layers"] == 2 and info["meta"] == {"note": "x"} and info["draft_vocab"] == 3
    assert cast.draft.load(tmp_path / "d.safetensors", T).vocab.tolist() == [1, 5, 9]
    (tmp_path / "d.json").unlink()
    with pytest.raises(FileNotFoundError, match="d.json.*train_draft.py"):
        cast.draft.load(tmp_path / "d.safetensors", T)
    # a config that does not match the tensors
    info["config"]["intermediate_size"] += 8
    (tmp_path / "d.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="does not match its config"):
        cast.draft.load(tmp_path / "d.safetensors", T)
    # tensors from another save than the JSON describes
    info = json.loads((tmp_path / "d.json").read_text())
    info["config"]["intermediate_size"] -= 8
    (tmp_path / "d.json").write_text(json.dumps(info))
    save_file({k: v for k, v in sd.items() if k != "vocab"}, str(tmp_path / "d.safetensors"))
    with pytest.raises(ValueError, match="come from different saves"):
        cast.draft.load(tmp_path / "d.safetensors", T)


@pytest.mark.slow
def test_smollm2_lossless_with_the_shipped_draft():
    """On the real SmolLM2 and the trained draft: identical greedy ids to generate, tree at batch 2, chain at batch 1."""
    import json

    from nblib import zoo

    if not cast.draft.default_path().exists():
        pytest.skip("no shipped draft checkpoint")
    torch.set_num_threads(1)  # a shared 2-core machine: one thread avoids OpenMP spin contention
    T, tok = zoo.load_causal_lm("smollm2", device="cpu")
    d = cast.draft.load(cast.draft.default_path(), T)
    rows = [json.loads(l) for l in open(cast.draft.default_path().parent / "eval_prompts.jsonl")]
    ps = [tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=True,
                                  add_generation_prompt=True) for r in (rows[0], rows[-1])]
    ps = [list(p["input_ids"]) if isinstance(p, dict) or hasattr(p, "keys") else list(p) for p in ps]
    ref = cast.greedy_reference(T, ps, 16, eos_token_id=tok.eos_token_id)
    res = cast.generate(T, d, ps, 16, cast.FixedTree(4, 4, 12), eos_token_id=tok.eos_token_id)
    assert res.sequences == ref
    # threshold: a trained draft gets tokens accepted (a random one: ~1.0); the shipped draft's held-out top-1
    # agreement is 0.42 (data/cast/draft_report.json), about 1.35-1.6 tokens per call
    assert res.mean_accepted > 1.15
    assert cast.generate(T, d, ps[:1], 16, cast.chain(3), eos_token_id=tok.eos_token_id).sequences == ref[:1]
