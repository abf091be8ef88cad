"""A skinny matrix-multiply kernel for speculative decoding's verify pass on CPUs (x86-64 with AVX2 and FMA).

Why it exists (measured on the 2-core AMD EPYC this suite is tested on, notebook 07 shows it): one decode
step multiplies each weight matrix by ONE activation row, and BLAS's matrix-vector path streams the weights
at about 9 GB/s. Verifying n tree tokens multiplies by n rows; BLAS switches to its general GEMM path, which
is built for big square products, and a 2-row product costs 1.6x a 1-row one although it reads the same
weights. Speculative decoding only pays when checking n tokens costs about as much as producing one, so that
inefficiency alone made every speculative method slower than plain decoding.

`y = x @ W.T` here reads each block of 4 weight rows from memory once and multiplies it with every
activation row while it sits in cache (register tiles of 4 weight rows x 3 activation rows, AVX2 FMA), split
over torch's own OpenMP threads. Each output y[m, n] is the same sequential 8-lane sum whatever the number of
rows, so results do not depend on the batch shape: verifying n tokens gives the very numbers n single-token
steps would.

The C source is compiled once with the machine's C compiler into the nblib cache (`nblib.kernels`, the
build-and-load machinery every compiled kernel shares), with the sha256 of the library recorded beside it (`skinny-<tag>.so.sha256`); a library whose bytes no longer match that record
(truncated, replaced) is not loaded but rebuilt, with one warning. Where that is impossible
(no compiler, another CPU, a GPU tensor, a dtype other than float32) `linear` falls back to torch's
`F.linear`, and `status()` says why. `NBLIB_KERNELS=torch` turns the kernel off everywhere.
"""
from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import kernels

MAX_ROWS = 64  # above this many activation rows BLAS's GEMM is efficient again (a prefill): use it
ENV = kernels.ENV  # "torch" turns the kernel off

SOURCE = r"""
#include <immintrin.h>
#include <stddef.h>
#include <omp.h>

static inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi); lo = _mm_hadd_ps(lo, lo); lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}

/* y[m, n..n+nr) for activation rows m..m+MR: 4 weight rows x MR activation rows of 8-lane accumulators.
   PF: prefetch the next 4 weight rows while the first tile of a block streams this one. */
#define TILE(MR, PF) { \
  __m256 acc[MR][4]; \
  for (int i = 0; i < MR; i++) for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps(); \
  for (int k = 0; k < K; k += 8) { \
    if (PF && (k & 15) == 0) { \
      _mm_prefetch((const char*)(w3 + K + k), _MM_HINT_T0); \
      _mm_prefetch((const char*)(w3 + 2 * (size_t)K + k), _MM_HINT_T0); \
      _mm_prefetch((const char*)(w3 + 3 * (size_t)K + k), _MM_HINT_T0); \
      _mm_prefetch((const char*)(w3 + 4 * (size_t)K + k), _MM_HINT_T0); } \
    __m256 q0 = _mm256_loadu_ps(w0 + k), q1 = _mm256_loadu_ps(w1 + k); \
    __m256 q2 = _mm256_loadu_ps(w2 + k), q3 = _mm256_loadu_ps(w3 + k); \
    for (int i = 0; i < MR; i++) { \
      __m256 v = _mm256_loadu_ps(x + (size_t)(m + i) * K + k); \
      acc[i][0] = _mm256_fmadd_ps(v, q0, acc[i][0]); acc[i][1] = _mm256_fmadd_ps(v, q1, acc[i][1]); \
      acc[i][2] = _mm256_fmadd_ps(v, q2, acc[i][2]); acc[i][3] = _mm256_fmadd_ps(v, q3, acc[i][3]); } } \
  for (int i = 0; i < MR; i++) for (int j = 0; j < nr; j++) { \
    float s = hsum(acc[i][j]); y[(size_t)(m + i) * N + n + j] = bias ? s + bias[n + j] : s; } }

/* y (M, N) = x (M, K) @ W (N, K)^T (+ bias (N,)); row-major, K a multiple of 8. */
void nblib_skinny(const float* x, const float* W, const float* bias, float* y, int M, int N, int K, int threads) {
  int nb = (N + 3) / 4;
  #pragma omp parallel for schedule(static) num_threads(threads)
  for (int b = 0; b < nb; b++) {
    int n = b * 4, nr = (N - n) < 4 ? (N - n) : 4;
    const float* w0 = W + (size_t)n * K;
    const float* w1 = nr > 1 ? w0 + K : w0;
    const float* w2 = nr > 2 ? w0 + 2 * (size_t)K : w0;
    const float* w3 = nr > 3 ? w0 + 3 * (size_t)K : w0;
    int m = 0;
    for (; m + 3 <= M; m += 3) { if (m == 0) TILE(3, 1) else TILE(3, 0) }
    if (M - m == 2) { if (m == 0) TILE(2, 1) else TILE(2, 0) }
    else if (M - m == 1) { if (m == 0) TILE(1, 1) else TILE(1, 0) }
  }
}

"""

_STATE: dict = {}  # "lib": the loaded library or None, "why": the reason when None
PROFILE_NAME = "nblib::skinny_mm"  # how the kernel's calls show in torch's profiler (while `profiled()` is on)
_PROFILED = [False]
_ACTIVE = [0]      # depth of open `fast_linears` blocks: `tree.head` uses the kernel while > 0
_LIMIT = [MAX_ROWS]  # rows up to which the kernel runs inside the open block (a profile's measured crossover)


def _build() -> tuple[ctypes.CDLL | None, str]:
    """Compile (once per source version, into the nblib cache) and load the kernel; (lib, '') or (None, why)."""
    sig = ([ctypes.c_void_p] * 4 + [ctypes.c_int] * 4, None)
    lib, why = kernels.load("skinny", SOURCE, {"nblib_skinny": sig}, what="verify kernel")
    if lib is not None:
        _STATE["fn"] = lib.nblib_skinny
    return lib, why


def library_matches(lib: str | Path) -> bool:
    """Whether a built kernel library's sha256 equals the one recorded beside it (`<lib>.sha256`) at build time."""
    return kernels.library_matches(lib)


def _lib():
    if "lib" not in _STATE:
        _STATE["lib"], _STATE["why"] = _build()
    return _STATE["lib"]


def status() -> str:
    """One line: whether the skinny kernel is in use on this machine, and why not if it is not."""
    return "skinny AVX2 kernel: on" if _lib() is not None else f"skinny kernel off ({_STATE['why']}): torch's F.linear"


def available() -> bool:
    """Whether the skinny kernel runs on this machine (compiled, AVX2 + FMA, not turned off)."""
    return _lib() is not None


def usable(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> bool:
    """Whether `linear(x, w, bias)` takes the kernel: float32 CPU tensors, contiguous weights, no autograd, few
    rows, K a multiple of 8."""
    return (x.device.type == "cpu" and w.device.type == "cpu" and x.dtype == torch.float32
            and w.dtype == torch.float32 and w.dim() == 2 and w.is_contiguous() and x.shape[-1] == w.shape[1]
            and w.shape[1] % 8 == 0 and (bias is None or bias.dtype == torch.float32)
            and x.numel() // max(1, x.shape[-1]) <= _LIMIT[0] and not torch.is_grad_enabled() and available())


def linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., K) @ w (N, K).T (+ bias): the skinny kernel where `usable`, else torch's F.linear."""
    if not usable(x, w, bias):
        return F.linear(x, w, bias)
    return _skinny(x, w, None if bias is None else bias.contiguous(), torch.get_num_threads())


def _skinny(x: torch.Tensor, w: torch.Tensor, bias, threads: int) -> torch.Tensor:
    """The kernel call itself; x float32 CPU, w (N, K) contiguous float32 with K % 8 == 0 (checked by callers)."""
    K = x.shape[-1]
    M = x.numel() // K
    if M > _LIMIT[0]:
        return F.linear(x, w, bias)
    if not x.is_contiguous():
        x = x.contiguous()
    y = x.new_empty((*x.shape[:-1], w.shape[0]))
    # torch's profiler cannot see inside a foreign library call: label it while `profiled()` is on
    with torch.profiler.record_function(PROFILE_NAME) if _PROFILED[0] else contextlib.nullcontext():
        _STATE["fn"](x.data_ptr(), w.data_ptr(), None if bias is None else bias.data_ptr(), y.data_ptr(),
                     M, w.shape[0], K, threads)
    return y


@contextlib.contextmanager
def profiled():
    """Within the block each kernel call is a `PROFILE_NAME` event in torch's profiler (off by default: cost)."""
    _PROFILED[0] = True
    try:
        yield
    finally:
        _PROFILED[0] = False


def _fast_forward(mod: torch.nn.Linear, threads: int):
    w, b = mod.weight, mod.bias

    def forward(x):
        if x.dtype is not torch.float32 or torch.is_grad_enabled():
            return F.linear(x, w, b)
        return _skinny(x, w, b, threads)
    return forward


def _eligible(mod: torch.nn.Linear) -> bool:
    w, b = mod.weight, mod.bias
    return (w.device.type == "cpu" and w.dtype == torch.float32 and w.is_contiguous() and w.shape[1] % 8 == 0
            and (b is None or (b.dtype == torch.float32 and b.is_contiguous())))


@contextlib.contextmanager
def limited(max_rows: int):
    """Inside an open `fast_linears` block: the kernel only up to `max_rows` activation rows (0: torch's matmul for
    every linear) until the inner block ends; cheap (no re-patching), so timings can alternate the two."""
    prev = _LIMIT[0]
    _LIMIT[0] = min(int(max_rows), MAX_ROWS)
    try:
        yield
    finally:
        _LIMIT[0] = prev


def row_limit() -> int:
    """Activation rows up to which the kernel runs now (MAX_ROWS, or a `fast_linears(max_rows=...)` block's limit)."""
    return _LIMIT[0]


@contextlib.contextmanager
def fast_linears(*models, enabled: bool = True, max_rows: int | None = None):
    """Within the block, every nn.Linear in `models` (and `tree.head`) multiplies with the skinny kernel.

    Outside it the models are untouched, so a baseline run before or after (transformers' `generate`) uses
    torch's own kernels. A no-op when `enabled` is False or the kernel is unavailable (see `status()`).
    max_rows: take the kernel only up to this many activation rows (batch x tokens) and torch's matmul above it,
    e.g. the crossover a latency profile measured on this machine (capped at MAX_ROWS; 0: torch everywhere).
    """
    if max_rows is not None and (not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 0):
        raise ValueError(f"max_rows must be a non-negative integer (activation rows), got {max_rows!r}")
    if not enabled or not available():
        yield False
        return
    patched, threads = [], torch.get_num_threads()
    for model in models:
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear) and "forward" not in mod.__dict__ and _eligible(mod):
                mod.forward = _fast_forward(mod, threads)
                patched.append(mod)
    prev = _LIMIT[0]
    _LIMIT[0] = MAX_ROWS if max_rows is None else min(max_rows, MAX_ROWS)
    _ACTIVE[0] += 1
    try:
        yield True
    finally:
        _ACTIVE[0] -= 1
        _LIMIT[0] = prev
        for mod in patched:
            del mod.forward


def active() -> bool:
    """Whether a `fast_linears` block is open (so the LM head should use the kernel too)."""
    return _ACTIVE[0] > 0
