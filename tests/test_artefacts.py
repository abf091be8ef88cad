"""Every file in data/ loads with the project's own loader; a file no loader claims (say a new pickle) fails the suite."""
from __future__ import annotations

import ast
import inspect
import json
import textwrap
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).resolve().parents[1] / "data"


# ----------------------------------------------------------------------------- loaders, one per kind of artefact
def _taskworld_model(path: Path) -> None:
    from nblib import taskworld

    model = taskworld.load_model(path.parent.name)  # reads config.json, model.safetensors, train.json
    assert sum(p.numel() for p in model.parameters()) > 0
    assert taskworld.model_info(path.parent.name)["sha256"]


def _bigbench_subset(path: Path) -> None:
    from nblib import taskworld

    _jsonl(path)
    assert len(taskworld.load_bigbench(path)) > 0


def _koala_tiny(path: Path) -> None:
    from nblib.koala import tiny

    stem = path.stem
    if stem == "teacher":
        name = "teacher"
    else:
        rest = stem[len("student_"):]
        recipes = [r for r in tiny.TINY_RECIPES if r != "teacher" and rest.startswith(r + "_")]
        assert recipes, f"{path.name}: no tiny recipe ({list(tiny.TINY_RECIPES)}) names this student"
        recipe = max(recipes, key=len)
        name = f"{recipe}:{rest[len(recipe) + 1:]}"
    unet, _ = tiny.load_tiny(name, path.parent)
    assert sum(p.numel() for p in unet.parameters()) > 0


def _koala_classifier(path: Path) -> None:
    from nblib.koala import metrics

    clf = metrics.load_classifier(path.parent)
    assert sum(p.numel() for p in clf.parameters()) > 0


def _mnist(path: Path) -> None:
    import numpy as np

    from nblib.koala import tiny

    digits = tiny.load_digits(path)
    assert digits["train_x"].shape[1:] == (1, 16, 16) and len(digits["train_y"]) == len(digits["train_x"])
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)
    _assert_no_pickle_np_load(tiny.load_digits)


def _stand_in(c: dict):
    """A one-block Llama with a draft config's vocabulary and width: a cheap stand-in for SmolLM2."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
                                        intermediate_size=32, num_hidden_layers=1, num_attention_heads=9,
                                        num_key_value_heads=3, head_dim=64, tie_word_embeddings=True)).eval()


def _draft(path: Path) -> None:
    """The shipped draft on a stand-in target of SmolLM2's vocabulary and width (loading SmolLM2 itself is slow)."""
    from nblib import cast

    info = json.loads(path.with_suffix(".json").read_text())
    c = info["config"]
    stand_in = _stand_in(c)
    d = cast.draft.load(path, stand_in)
    own = sum(p.numel() for n, p in d.model.named_parameters() if "embed" not in n and "lm_head" not in n)
    assert own == info["parameters"] and len(d.vocab) == info["draft_vocab"]
    assert d.model.model.embed_tokens.weight is stand_in.model.embed_tokens.weight  # re-attached, not stored
    with torch.no_grad():
        assert torch.isfinite(d.model(torch.tensor([[1, 2, 3]])).logits).all()


def _eagle(path: Path) -> None:
    """The shipped feature draft on a stand-in target of SmolLM2's vocabulary and width."""
    from nblib.cast import eagle

    info = json.loads(path.with_suffix(".json").read_text())
    c = info["config"]
    stand_in = _stand_in(c)
    d = eagle.load(path, stand_in)
    assert d.draft_params == info["parameters"] and len(d.vocab) == info["draft_vocab"]
    with torch.no_grad():
        f = d.fuse(torch.tensor([[1, 2, 3]]), torch.randn(1, 3, c["hidden_size"]))
        assert torch.isfinite(f).all()


def _cast_benchmark(path: Path) -> None:
    from nblib import cast

    res = cast.bench.load_benchmark(path)
    head = cast.bench.headline(res)
    assert head["lossless"] and res["sweep"] and res["machine"]["device"]


def _json(path: Path) -> None:
    json.loads(path.read_text())


def _jsonl(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert rows, f"{path} is empty"


def _lwe_cases(path: Path) -> None:
    from nblib.lwe import data

    header, cases = data.read_jsonl(path)
    assert header["licence"] and cases


def _lwe_runs(path: Path) -> None:
    from nblib.lwe import bench

    meta, runs = bench.load_runs(path)
    assert meta["command"] and runs and all(0 < r.n <= meta["n"] for r in runs.values())
    for name, job in meta.get("jobs", {}).items():      # each run as long as the job that made it says
        assert runs[name].n == job["n"] and job["wall_s"] >= 0 and job["command"], name


def _lwe_store(path: Path) -> None:
    from nblib.lwe import ResponseStore

    lines = [line for line in path.read_text().splitlines() if line.strip()]
    store = ResponseStore(path, write=False)
    assert not store.skipped and len(store) == len(lines), f"{path}: a cut or repeated line"
    assert all(r["kind"] in ("generate", "score") for r in store.rows.values())


def _docs(path: Path) -> None:
    assert path.read_text().strip()


def _d2dmoe_delta(path: Path) -> None:
    from nblib import d2dmoe

    name = path.name.split("_")[0]
    model = d2dmoe.load_base(name, "sparse", path=path)  # base weights from their package + the merged delta
    assert sum(p.numel() for p in model.parameters()) > 0


def _d2dmoe_routers(path: Path) -> None:
    from safetensors.torch import load_file

    from nblib import d2dmoe

    _, rest = path.stem.split("_routers_e")
    state = load_file(str(path))
    parts = d2dmoe.convert.partitions_of(state)
    assert parts and all(p.shape[0] == int(rest) for p in parts)
    assert all(sorted(p.reshape(-1).tolist()) == list(range(p.numel())) for p in parts)  # a partition


def _d2dmoe_multiemo(path: Path) -> None:
    from nblib import d2dmoe

    assert d2dmoe.data.load_header(path)["licence"]
    assert d2dmoe.load_multiemo("train", path=path) and d2dmoe.load_multiemo("test", path=path)


def _d2dmoe_smollm2_lora(path: Path) -> None:
    from nblib.cache import read_safetensors

    state = read_safetensors(path, rebuild="python scripts/d2dmoe_smollm2.py --finetune")
    layers = {int(k.split(".layers.")[1].split(".")[0]) for k in state}
    assert layers == set(range(30)), "SmolLM2-135M has 30 layers: a LoRA factor or norm per layer"
    assert any("gate_proj" in k and "lora" in k for k in state) and any("up_proj" in k and "lora" in k for k in state)
    assert all(v.isfinite().all() for v in state.values())


def _hierrouter_policy(path: Path) -> None:
    import numpy as np

    from nblib import hierrouter

    router = hierrouter.Router.load(path)  # SB3's PPO rebuilt from the JSON config, set_parameters(state_dict)
    raw = np.zeros((2, router.config["raw_dim"] + 3), np.float32)   # raw observation: view, hop, hops left, spent
    assert router.probabilities(raw).shape == (2, len(router.config["pool"])) and router.config["command"]
    assert router.config["pool"][-1] == "v2-large"                   # the v2 ladder, not the old one


def _hierrouter_results(path: Path) -> None:
    out = json.loads(path.read_text())
    assert out["rows"] and out["summary"]["per_lam"] and out["command"] and out["regression"]["policies"]


def _steer_frontier(path: Path) -> None:
    from nblib import steer

    fr = steer.bench.load_frontier(path)
    s = steer.summary(fr)
    assert s["confidence_read"] in steer.READS and set(fr.profiles) == {"latency_cpu", "latency_gpu"}


# (pattern relative to data/, loader): the first pattern that matches claims the file
LOADERS = [
    ("**/README.md", _docs),
    ("taskworld/*/model.safetensors", _taskworld_model),
    ("taskworld/*/config.json", _taskworld_model),
    ("taskworld/*/train.json", _json),
    ("taskworld/bigbench_arithmetic_subset.jsonl", _bigbench_subset),
    ("koala/teacher.safetensors", _koala_tiny),
    ("koala/student_*.safetensors", _koala_tiny),
    ("koala/classifier.safetensors", _koala_classifier),
    ("koala/mnist_subset.npz", _mnist),
    ("cast/draft.safetensors", _draft),
    ("cast/draft.json", lambda p: _draft(p.with_suffix(".safetensors"))),
    ("cast/eagle.safetensors", _eagle),
    ("cast/eagle.json", lambda p: _eagle(p.with_suffix(".safetensors"))),
    ("cast/benchmark_cpu.json", _cast_benchmark),
    ("lwe/*_pairs.jsonl", _lwe_cases),
    ("lwe/runs_*.json", _lwe_runs),
    ("lwe/store_*.jsonl", _lwe_store),
    ("d2dmoe/*_delta.safetensors", _d2dmoe_delta),
    ("d2dmoe/*_routers_e*.safetensors", _d2dmoe_routers),
    ("d2dmoe/multiemo_subset.jsonl", _d2dmoe_multiemo),
    ("d2dmoe/smollm2_relu_lora.safetensors", _d2dmoe_smollm2_lora),
    ("hierrouter/policy_*.safetensors", _hierrouter_policy),
    ("hierrouter/policy_*.json", lambda p: _hierrouter_policy(p.with_suffix(".safetensors"))),
    ("hierrouter/results.json", _hierrouter_results),
    ("steer/frontier_v2.json.gz", _steer_frontier),
    ("**/*.jsonl", _jsonl),
    ("**/*.json", _json),
]


def loader_of(rel: Path):
    """The loader claiming a file under data/ (None when no loader does)."""
    for pattern, fn in LOADERS:
        if rel.match(pattern) or (pattern.startswith("**/") and rel.match(pattern[3:])):
            return fn
    return None


FILES = sorted(p.relative_to(DATA) for p in DATA.rglob("*") if p.is_file())


def test_every_file_in_data_has_a_loader():
    assert FILES, "data/ is empty"
    unclaimed = [str(p) for p in FILES if loader_of(p) is None]
    assert not unclaimed, (f"no loader claims {unclaimed}: add the project loader that reads it to LOADERS in "
                           "tests/test_artefacts.py (and never ship a pickle: use safetensors / JSON / plain npz)")


def test_a_stray_pickle_would_not_be_claimed():
    for name in ("cast/draft.pt", "koala/extra.pkl", "taskworld/tiny/model.bin", "koala/other.npz",
                 "cast/extra.safetensors"):
        assert loader_of(Path(name)) is None, name


@pytest.mark.parametrize("rel", FILES, ids=str)
def test_artefact_loads(rel):
    fn = loader_of(rel)
    assert fn is not None, f"no loader for data/{rel}"
    fn(DATA / rel)


def _assert_no_pickle_np_load(fn) -> None:
    """Every np.load in fn's source passes no allow_pickle, or allow_pickle=False."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "load" and isinstance(n.func.value, ast.Name) and n.func.value.id in ("np", "numpy")]
    assert calls, f"{fn.__qualname__} does not call np.load"
    for c in calls:
        for kw in c.keywords:
            if kw.arg == "allow_pickle":
                assert isinstance(kw.value, ast.Constant) and kw.value.value is False, \
                    f"{fn.__qualname__} calls np.load with allow_pickle other than False"


def test_no_pickle_loading_in_the_code():
    """No torch.load without weights_only=True, no pickle / joblib loads of shipped data, under nblib/ scripts/ benchmarks/."""
    root = DATA.parent
    bad = []
    for folder in ("nblib", "scripts", "benchmarks"):
        for py in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(py.read_text())
            for n in ast.walk(tree):
                if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
                    continue
                base = n.func.value.id if isinstance(n.func.value, ast.Name) else None
                kws = {kw.arg: kw.value for kw in n.keywords}
                if base == "torch" and n.func.attr == "load":
                    w = kws.get("weights_only")
                    if not (isinstance(w, ast.Constant) and w.value is True):
                        bad.append(f"{py.relative_to(root)}:{n.lineno} torch.load without weights_only=True")
                if base in ("np", "numpy") and n.func.attr == "load":
                    a = kws.get("allow_pickle")
                    if a is not None and not (isinstance(a, ast.Constant) and a.value is False):
                        bad.append(f"{py.relative_to(root)}:{n.lineno} np.load with allow_pickle")
                if base in ("pickle", "cloudpickle", "dill") and n.func.attr in ("load", "loads"):
                    bad.append(f"{py.relative_to(root)}:{n.lineno} {base}.{n.func.attr}")
    assert not bad, bad
