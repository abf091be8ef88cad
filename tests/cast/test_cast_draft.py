"""The draft model helpers (nblib.cast.draft): init from the target, loss, int8 / fp16 save-load round trips; the
shipped SmolLM2 draft."""
from __future__ import annotations

import json

import pytest
import torch

from nblib import cast

LIMIT = 10_000_000  # bytes: the line for a tracked file


def test_init_train_save_load_round_trip_fp16(tmp_path, prompts, tiny):
    """Format /1 (every tensor fp16, save(..., quantize=False)) still saves and loads: a user's older checkpoint."""
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
    path = cast.draft.save(d, tmp_path / "d.safetensors", quantize=False)
    assert path == tmp_path / "d.safetensors" and (tmp_path / "d.json").exists()
    assert json.loads((tmp_path / "d.json").read_text())["format"] == "nblib.cast.draft/1"
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
    from safetensors.torch import load_file, save_file

    T = tiny(0, layers=3)
    d = cast.draft.init_from_target(T, [1, 5, 9], layers=(0, 2))
    cast.draft.save(d, tmp_path / "d.pt", meta={"note": "x"})  # any suffix: the pair is <stem>.safetensors + .json
    sd = load_file(str(tmp_path / "d.safetensors"))
    assert sd["vocab"].dtype == torch.int64 and sd["vocab"].tolist() == [1, 5, 9]
    weights = {k: v for k, v in sd.items() if k != "vocab" and not k.endswith(".scale")}
    assert all(v.dtype == (torch.int8 if v.dim() == 2 else torch.float16) for v in weights.values())
    assert {k for k in sd if k.endswith(".scale")} == {k + ".scale" for k, v in weights.items() if v.dim() == 2}
    assert all(sd[k + ".scale"].dtype == torch.float16 and sd[k + ".scale"].shape == (len(v),)
               for k, v in weights.items() if v.dim() == 2)  # one scale per output row
    assert not any("embed" in k or "lm_head" in k for k in sd)
    info = json.loads((tmp_path / "d.json").read_text())
    assert info["config"]["num_hidden_layers"] == 2 and info["meta"] == {"note": "x"} and info["draft_vocab"] == 3
    assert info["format"] == "nblib.cast.draft/2" and info["parameters"] == sum(v.numel() for v in weights.values())
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
    # an int8 tensor without its scale, a scale without its tensor
    for drop in ("model.layers.0.mlp.up_proj.weight.scale", "model.layers.0.mlp.up_proj.weight"):
        cast.draft.write_checkpoint({k: v for k, v in sd.items() if k != drop}, tmp_path / "d", info["format"],
                                    info["config"], {})
        with pytest.raises(ValueError, match="do not pair up"):
            cast.draft.load(tmp_path / "d.safetensors", T)
    # int8 tensors under an fp16 (/1) description; a description of another format
    cast.draft.write_checkpoint(sd, tmp_path / "d", "nblib.cast.draft/1", info["config"], {})
    with pytest.raises(ValueError, match="integer tensors"):
        cast.draft.load(tmp_path / "d.safetensors", T)
    cast.draft.write_checkpoint(sd, tmp_path / "d", "nblib.cast.draft/9", info["config"], {})
    with pytest.raises(ValueError, match="format 'nblib.cast.draft/9', expected one of"):
        cast.draft.load(tmp_path / "d.safetensors", T)


@pytest.mark.parametrize("group", [None, 8])
def test_quantize_error_is_within_half_a_scale(group):
    """Symmetric int8: every element within half its (fp16) scale, nothing clipped, the scale tight to max|w| / 127."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(24, 40, generator=g) * torch.logspace(-6, 1, 24)[:, None]  # rows over seven decades
    w[3, 5] = 40.0  # an outlier row
    w[7] = 0.0      # an all-zero row
    q, scale = cast.draft.quantize(w, group)
    assert q.dtype == torch.int8 and scale.dtype == torch.float16
    assert scale.shape == ((24,) if group is None else (24, 5))
    assert int(q.abs().max()) <= 127
    size = 40 if group is None else group
    sc = scale.float().reshape(24, 40 // size)          # (rows, blocks)
    s = sc.repeat_interleave(size, dim=1)               # each element's scale, (24, 40)
    err = (w - cast.draft.dequantize(q, scale)).abs()
    assert (err <= s / 2 * (1 + 1e-6) + 1e-12).all()
    assert err[7].max() == 0 and (q[7] == 0).all()
    # no clipping: 127 * scale covers each block's max|w|; tight: within an fp16 step of it where the scale is a
    # normal fp16 number (tiny rows get subnormal scales, coarser but still within half a scale)
    amax = w.abs().reshape(24, 40 // size, size).amax(-1)
    nz = amax > 0
    assert (sc[nz] * 127 >= amax[nz]).all()
    normal = sc >= 2 ** -14
    assert normal.sum() > 10 and (sc[normal] * 127 <= amax[normal] * (1 + 2 ** -9)).all()
    assert (q.abs().reshape(24, 40 // size, size).amax(-1)[normal] == 127).all()
    # dequantize into another dtype; bad input is refused
    assert cast.draft.dequantize(q, scale, torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="does not divide"):
        cast.draft.quantize(w, 7)
    with pytest.raises(ValueError, match="inf/NaN"):
        cast.draft.quantize(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="do not fit"):
        cast.draft.dequantize(q, scale[:5])


def _dequantized_copy(d):
    """A copy of draft d whose 2-D weights are int8-quantised and back (per row), 1-D ones rounded to fp16."""
    import copy

    d2 = copy.deepcopy(d)
    with torch.no_grad():
        for name, p in d2.model.named_parameters():
            if "embed" in name or "lm_head" in name:
                continue
            p.copy_(cast.draft.dequantize(*cast.draft.quantize(p)) if p.dim() == 2 else p.half().float())
    return d2


def test_int8_round_trip_gives_the_dequantised_model(tmp_path, prompts, tiny):
    """A /2 save -> load gives exactly the model with q * scale weights (in the target's dtype), not the fp32 one."""
    T = tiny(0, layers=3)
    d = cast.draft.init_from_target(T, list(range(0, 97, 2)), layers=(0, 2))
    with torch.no_grad():  # move the weights off the target's so quantisation has something to lose
        for name, p in d.model.named_parameters():
            if "embed" not in name:
                p.add_(0.05 * torch.randn_like(p))
    path = cast.draft.save(d, tmp_path / "d.safetensors")
    d2 = cast.draft.load(path, T)
    want = _dequantized_copy(d)
    x = torch.tensor([prompts(1)[0]])
    with torch.no_grad():
        got, ref, orig = d2.model(x).logits, want.model(x).logits, d.model(x).logits
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert (got - orig).abs().max() > 1e-4  # the int8 weights are not the fp32 ones: the check above can fail
    assert d2.model.model.embed_tokens.weight is T.model.embed_tokens.weight
    # into a bf16 target: the dequantised weights in bf16
    Tb = tiny(0, layers=3).to(torch.bfloat16)
    db = cast.draft.load(path, Tb)
    w = db.model.model.layers[1].mlp.down_proj.weight
    assert w.dtype == torch.bfloat16
    torch.testing.assert_close(w, want.model.model.layers[1].mlp.down_proj.weight.to(torch.bfloat16), atol=0, rtol=0)


def test_quantize_checkpoint_converts_fp16_to_int8(tmp_path, prompts, tiny):
    """scripts/quantize_draft.py's step: an fp16 (/1) pair in, an int8 (/2) pair out with the same config and meta."""
    T = tiny(0, layers=3)
    d = cast.draft.init_from_target(T, [2, 4, 6, 8], layers=(0, 2))
    with torch.no_grad():  # the int8 file is quantised from the fp16 one: round the same way before comparing
        for name, q in d.model.named_parameters():
            if "embed" not in name:
                q.copy_(q.half().float())
    src = cast.draft.save(d, tmp_path / "fp16.safetensors", meta={"note": "x"}, quantize=False)
    dst = cast.draft.quantize_checkpoint(src, tmp_path / "int8.safetensors")
    info = json.loads((tmp_path / "int8.json").read_text())
    assert info["format"] == "nblib.cast.draft/2" and info["meta"]["note"] == "x"
    assert "fp16.safetensors" in info["meta"]["quantized_from"]
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    x = torch.tensor([prompts(1)[0]])
    with torch.no_grad():
        torch.testing.assert_close(cast.draft.load(dst, T).model(x).logits, _dequantized_copy(d).model(x).logits,
                                   atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="fp16 draft checkpoint"):  # its input must be /1
        cast.draft.quantize_checkpoint(dst, tmp_path / "again.safetensors")
    with pytest.raises(ValueError, match="overwrite its input"):
        cast.draft.quantize_checkpoint(src, src)


def test_the_shipped_draft_is_int8_and_under_the_line():
    """data/cast/draft.safetensors is a format-/2 (int8) pair below 10 MB, and its description says so."""
    path = cast.draft.default_path()
    info = json.loads(path.with_suffix(".json").read_text())
    assert path.stat().st_size < LIMIT, f"{path} is {path.stat().st_size:,} bytes"
    assert info["format"] == cast.draft.FORMAT == "nblib.cast.draft/2"
    assert info["quantization"]["group"] is None  # per-row scales, as data/cast/README.md says


@pytest.mark.slow
def test_smollm2_lossless_with_the_shipped_draft():
    """On the real SmolLM2 and the shipped (int8) draft: identical greedy ids to generate, tree at batch 2, chain at
    batch 1, and as transformers' assistant_model."""
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
    # threshold: a trained draft gets tokens accepted (a random one: ~1.0); the shipped (int8) draft's held-out top-1
    # agreement is about 0.42 (data/cast/draft_report.json), about 1.35-1.6 tokens per call
    assert res.mean_accepted > 1.15
    assert cast.generate(T, d, ps[:1], 16, cast.chain(3), eos_token_id=tok.eos_token_id).sequences == ref[:1]
    # the int8 draft, dequantised, is a plain causal LM: transformers' assisted generation takes it as assistant
    x = torch.tensor(ps[:1])
    kw = {"max_new_tokens": 16, "do_sample": False, "pad_token_id": tok.eos_token_id}
    with torch.no_grad():
        assert torch.equal(T.generate(x, assistant_model=d.model, **kw), T.generate(x, **kw))
