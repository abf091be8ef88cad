"""Small C kernels compiled once into the nblib cache and loaded with ctypes (x86-64, AVX2 + FMA).

`load(name, source, symbols)` compiles `source` with the machine's C compiler (gcc -O3 -mavx2 -mfma
-fopenmp) into `<cache>/kernels/<name>-<tag>.so`, where the tag hashes the source and the flags, so an
edited source builds a new library. The library's sha256 is recorded beside it (`<name>-<tag>.so.sha256`);
a library whose bytes no longer match that record (truncated, replaced) is not loaded but rebuilt, with one
warning. Both files are written atomically (temporary file + rename), so parallel builds never clash.
Where a kernel cannot run (no compiler, another CPU, a failed build, `NBLIB_KERNELS=torch`) `load` returns
`(None, why)` and never raises: the caller falls back to torch and its `status()` shows `why`.

The library is loaded after torch, so its OpenMP runtime (the same soname) is torch's own.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch  # noqa: F401  (imported first: the kernels bind to torch's OpenMP runtime)

ENV = "NBLIB_KERNELS"  # "torch" turns every compiled kernel off
FLAGS = ("-O3", "-mavx2", "-mfma", "-fopenmp", "-shared", "-fPIC")
CPU_CHECK = r"""
int nblib_cpu_ok(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
"""


def disabled_reason() -> str:
    """Why compiled kernels cannot run here at all ('' when they may): the env switch or a non-x86-64 CPU."""
    if os.environ.get(ENV, "").lower() == "torch":
        return f"turned off by {ENV}=torch"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the kernels are written for x86-64 (AVX2); this CPU is {platform.machine()}"
    return ""


def compiler() -> str | None:
    """The C compiler kernels are built with ($CC, else gcc, else cc), or None."""
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def library_path(name: str, source: str, flags=FLAGS) -> Path:
    """Where the library built from `source` with `flags` lives in the nblib cache."""
    from .cache import cache_dir

    tag = hashlib.sha256((source + CPU_CHECK + " ".join(flags)).encode()).hexdigest()[:12]
    return cache_dir() / "kernels" / f"{name}-{tag}.so"


def hash_path(lib: str | Path) -> Path:
    """The file beside a library that records its sha256 at build time."""
    lib = Path(lib)
    return lib.with_name(lib.name + ".sha256")


def library_matches(lib: str | Path) -> bool:
    """Whether a built kernel library's sha256 equals the one recorded beside it (`<lib>.sha256`) at build time."""
    lib = Path(lib)
    try:
        recorded = hash_path(lib).read_text().strip()
        actual = hashlib.sha256(lib.read_bytes()).hexdigest()
    except OSError:
        return False
    return len(recorded) == 64 and recorded == actual


def _atomic_write(target: Path, write) -> None:
    """Write a file through a temporary sibling and a rename."""
    fd, part = tempfile.mkstemp(dir=target.parent, suffix=".part")
    os.close(fd)
    try:
        write(part)
        os.replace(part, target)
    finally:
        if os.path.exists(part):
            os.unlink(part)


def build(name: str, source: str, flags=FLAGS, what: str = "kernel") -> tuple[Path | None, str]:
    """Compile `source` into the cache once (rebuilding a library that fails its sha256); (path, '') or (None, why)."""
    cc = compiler()
    if not cc:
        return None, f"no C compiler found (install gcc, or set CC) to build the {what}"
    out = library_path(name, source, flags)
    if out.exists() and not library_matches(out):
        warnings.warn(f"{out} does not match the sha256 recorded when it was built ({out.name}.sha256 missing or "
                      "different: truncated, replaced or edited): not loading it, rebuilding the kernel",
                      UserWarning, stacklevel=4)
        out.unlink(missing_ok=True)
    if out.exists():
        return out, ""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{name}.c"
        src.write_text(source + CPU_CHECK)
        so = Path(tmp) / f"{name}.so"
        cmd = [cc, *flags, str(src), "-o", str(so)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"compiling the {what} failed ({' '.join(cmd[:6])} ...): {e}"
        if r.returncode != 0:
            return None, f"compiling the {what} failed ({' '.join(cmd[:6])} ...): {r.stderr.strip()[:300]}"
        digest = hashlib.sha256(so.read_bytes()).hexdigest()
        _atomic_write(hash_path(out), lambda p: Path(p).write_text(digest + "\n"))   # the hash first, then the library
        _atomic_write(out, lambda p: shutil.copyfile(so, p))
    if not library_matches(out):   # another build raced this one between the two renames
        return None, f"the {what} at {out} changed while it was being built; run again"
    return out, ""


def load(name: str, source: str, symbols: dict[str, tuple[list, object]], flags=FLAGS,
         what: str = "kernel") -> tuple[ctypes.CDLL | None, str]:
    """Build (once) and load a C kernel; symbols maps function name -> (argtypes, restype). (lib, '') or (None, why)."""
    why = disabled_reason()
    if why:
        return None, why
    path, why = build(name, source, flags, what)
    if path is None:
        return None, why
    try:
        lib = ctypes.CDLL(str(path))  # after torch: its OpenMP runtime (same soname) is the one this binds to
    except OSError as e:
        return None, f"loading the {what} from {path} failed: {e}"
    if not lib.nblib_cpu_ok():
        return None, "this CPU lacks AVX2 or FMA"
    for sym, (argtypes, restype) in symbols.items():
        try:
            f = getattr(lib, sym)
        except AttributeError:
            return None, f"the {what} library {path.name} has no function {sym}"
        f.argtypes, f.restype = list(argtypes), restype
    return lib, ""
