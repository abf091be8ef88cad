"""One cost ledger for every notebook: FLOPs, wall time, peak memory, tokens, calls, USD.

Measured FLOPs come from torch's own flop counter (matmuls, convolutions and
attention kernels; element-wise ops are not counted, as in every FLOP table in
the papers). The analytic count of a decoder-only transformer forward is
`transformer_flops`; a test checks that the two agree within 10 %.
"""
from __future__ import annotations

import dataclasses
import numbers
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import checks

# ----------------------------------------------------------------------------- units
_FAMILIES = {
    "FLOPs": {"FLOPs": 1.0, "kFLOPs": 1e3, "MFLOPs": 1e6, "GFLOPs": 1e9, "TFLOPs": 1e12, "PFLOPs": 1e15},
    "s": {"s": 1.0, "ms": 1e-3, "us": 1e-6},
    "B": {"B": 1.0, "kB": 1e3, "MB": 1e6, "GB": 1e9},  # decimal: 1 MB = 10^6 bytes
    "USD": {"USD": 1.0},
    "tokens": {"tokens": 1.0},
    "calls": {"calls": 1.0},
    "tokens/s": {"tokens/s": 1.0},
}
_UNIT_FAMILY = {u: fam for fam, units in _FAMILIES.items() for u in units}


@dataclass(frozen=True)
class Quantity:
    """A number with a unit (FLOPs, ms, MB, USD, tokens ...) that converts within its family."""

    value: float
    unit: str

    def __post_init__(self):
        if self.unit not in _UNIT_FAMILY:
            raise ValueError(f"unknown unit {self.unit!r}; known: {sorted(_UNIT_FAMILY)}")

    def to(self, unit: str) -> "Quantity":
        """Convert to another unit of the same family (e.g. FLOPs -> GFLOPs)."""
        fam = _UNIT_FAMILY.get(unit)
        if fam != _UNIT_FAMILY[self.unit]:
            raise ValueError(f"cannot convert {self.unit} to {unit}")
        scale = _FAMILIES[fam]
        return Quantity(self.value * scale[self.unit] / scale[unit], unit)

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        fam = _FAMILIES[_UNIT_FAMILY[self.unit]]
        base = self.value * fam[self.unit]
        # pick the largest unit that keeps the number >= 1
        best = min(fam.items(), key=lambda kv: kv[1])
        for name, scale in sorted(fam.items(), key=lambda kv: kv[1]):
            if abs(base) >= scale:
                best = (name, scale)
        v = base / best[1]
        if best[0] == "USD":
            return f"${v:,.4g}"
        return f"{v:,.3g} {best[0]}"


# ----------------------------------------------------------------------------- FLOPs
def sdpa_flop_mapping() -> dict:
    """torch counts SDPA on CUDA kernels only; map the CPU flash kernel to the same formula."""
    from torch.utils import flop_counter as fc

    def cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(query, key, value)  # shapes: (B, heads, T, head_dim)

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    return {} if op is None else {op: cpu_sdpa}


def measure_flops(fn: Callable[..., Any], *args, **kwargs) -> tuple[Any, int]:
    """Run fn(*args, **kwargs) under torch's FlopCounterMode; return (result, total FLOPs)."""
    with FlopCounterMode(display=False, custom_mapping=sdpa_flop_mapping()) as counter, torch.no_grad():
        out = fn(*args, **kwargs)
    return out, int(counter.get_total_flops())


@dataclass(frozen=True)
class TransformerShape:
    """The shapes that set a decoder-only transformer's FLOPs (read from a transformers config)."""

    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    vocab: int
    gated_mlp: bool = True  # Llama-style gate/up/down (3 matrices) vs GPT-2-style (2)

    @classmethod
    def from_config(cls, cfg: Any) -> "TransformerShape":
        """Build from a transformers config (Llama/Mistral/Qwen-style or GPT-2-style)."""
        if getattr(cfg, "model_type", "") == "gpt2":
            d = cfg.n_embd
            return cls(d, cfg.n_layer, cfg.n_head, cfg.n_head, d // cfg.n_head,
                       cfg.n_inner or 4 * d, cfg.vocab_size, gated_mlp=False)
        try:
            d, h = cfg.hidden_size, cfg.num_attention_heads
            head_dim = getattr(cfg, "head_dim", None) or d // h
            return cls(d, cfg.num_hidden_layers, h, getattr(cfg, "num_key_value_heads", None) or h,
                       head_dim, cfg.intermediate_size, cfg.vocab_size, gated_mlp=True)
        except AttributeError as e:
            raise ValueError(f"cannot read transformer shapes from a {type(cfg).__name__}: {e}") from e

    def params(self, tied_embeddings: bool = True) -> int:
        """Return the parameter count of the matrices (norm vectors excluded)."""
        attn = self.d_model * self.head_dim * (2 * self.n_heads + 2 * self.n_kv_heads)
        mlp = (3 if self.gated_mlp else 2) * self.d_model * self.d_ff
        emb = self.vocab * self.d_model * (1 if tied_embeddings else 2)
        return self.n_layers * (attn + mlp) + emb


def transformer_flops(shape: TransformerShape, batch: int, new_tokens: int, past: int = 0,
                      logits_positions: int | None = None) -> int:
    """Analytic FLOPs of one forward over `new_tokens` per sequence after `past` cached ones.

    Counts matmuls as 2*m*n*k: Q/K/V/O projections, attention scores and
    weighted sums over the whole key length (as the SDPA kernels compute them,
    causal or not), the MLP, and the LM head on `logits_positions` positions
    per sequence (default: all new tokens; `generate` keeps only the last).
    """
    if not isinstance(shape, TransformerShape):
        raise TypeError(f"shape must be a TransformerShape (e.g. TransformerShape.from_config(model.config)), "
                        f"got {type(shape).__name__}")
    check_positive(batch=batch, new_tokens=new_tokens)
    past = checks.whole("past", past, low=0)
    if logits_positions is not None:
        logits_positions = checks.whole("logits_positions", logits_positions, low=0)
    batch, s = int(batch), shape
    t, keys = int(new_tokens), past + int(new_tokens)
    proj = 2 * t * s.d_model * s.head_dim * (2 * s.n_heads + 2 * s.n_kv_heads)
    attn = 2 * 2 * t * keys * s.n_heads * s.head_dim
    mlp = 2 * t * s.d_model * s.d_ff * (3 if s.gated_mlp else 2)
    lp = t if logits_positions is None else logits_positions
    head = 2 * lp * s.d_model * s.vocab
    return batch * (s.n_layers * (proj + attn + mlp) + head)


def check_positive(**values: int) -> None:
    """Raise a ValueError naming the first argument that is not a positive integer."""
    for name, v in values.items():   # numpy integers count; floats (even 4.0) and bools do not
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
            raise checks.BadArgument(f"{name} must be a positive integer (1 or more), got {v!r}")


# ----------------------------------------------------------------------------- time
@dataclass(frozen=True)
class Timing:
    """Wall time of repeated calls after warm-up: median and spread, in milliseconds."""

    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int
    samples_ms: tuple[float, ...] = field(repr=False, default=())

    @property
    def spread_ms(self) -> float:
        """Max minus min over the repeats."""
        return self.max_ms - self.min_ms

    def __str__(self) -> str:
        return f"{self.median_ms:.2f} ms (min {self.min_ms:.2f}, max {self.max_ms:.2f}, n={self.repeats})"


def sync_device(device: Any) -> None:
    """Wait for queued kernels on CUDA/MPS (no-op on CPU) so wall times are real."""
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev is not None and dev.type == "mps":
        torch.mps.synchronize()


def time_fn(fn: Callable[[], Any], warmup: int = 1, repeats: int = 5, device: Any = None) -> Timing:
    """Time fn() after `warmup` untimed calls: median/min/max over `repeats` calls, in ms."""
    check_positive(repeats=repeats)
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        sync_device(device)
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            sync_device(device)
            samples.append((time.perf_counter() - t0) * 1e3)
    return Timing(statistics.median(samples), min(samples), max(samples), repeats, tuple(samples))


def time_interleaved(fns: dict[str, Callable[[], Any]], warmup: int = 1, repeats: int = 5,
                     device: Any = None) -> dict[str, Timing]:
    """Time several functions in rounds (A, B, C, A, B, C ...) so load drift hits them alike; a Timing each."""
    check_positive(repeats=repeats)
    if not fns:
        raise ValueError("time_interleaved needs at least one function")
    samples: dict[str, list[float]] = {name: [] for name in fns}
    with torch.no_grad():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        sync_device(device)
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                sync_device(device)
                samples[name].append((time.perf_counter() - t0) * 1e3)
    return {name: Timing(statistics.median(v), min(v), max(v), repeats, tuple(v)) for name, v in samples.items()}


def ratio_spread(num: Timing, den: Timing) -> tuple[float, float, float]:
    """Per-round ratios num/den of two interleaved Timings: (median, min, max)."""
    if len(num.samples_ms) != len(den.samples_ms) or not num.samples_ms:
        raise ValueError("ratio_spread needs two Timings from the same interleaved run (same number of samples)")
    r = [a / b for a, b in zip(num.samples_ms, den.samples_ms, strict=True)]
    return statistics.median(r), min(r), max(r)


# ----------------------------------------------------------------------------- roofline
@dataclass(frozen=True)
class MachineLimits:
    """What this machine can do at most: memory read bandwidth (bytes/s) and matmul throughput (FLOP/s)."""

    read_bytes_per_s: float
    matmul_flops_per_s: float
    threads: int
    dtype: str = "float32"

    @property
    def ridge_flops_per_byte(self) -> float:
        """Arithmetic intensity (FLOPs per byte read) above which compute, not memory, is the limit."""
        return self.matmul_flops_per_s / self.read_bytes_per_s

    def __str__(self) -> str:
        return (f"{self.read_bytes_per_s / 1e9:.1f} GB/s read, {self.matmul_flops_per_s / 1e9:.0f} GFLOP/s "
                f"({self.dtype} matmul), {self.threads} threads")


def measure_machine(read_mb: int = 256, matmul_n: int = 1024, repeats: int = 5,
                    dtype: torch.dtype = torch.float32) -> MachineLimits:
    """Measure read bandwidth (summing a `read_mb` MB tensor) and peak matmul FLOP/s (n x n @ n x n); best of repeats."""
    check_positive(read_mb=read_mb, matmul_n=matmul_n, repeats=repeats)
    x = torch.ones(read_mb * 1_000_000 // torch.empty((), dtype=dtype).element_size(), dtype=dtype)   # read_mb MB
    a = torch.randn(matmul_n, matmul_n, dtype=torch.float32).to(dtype)
    b = torch.randn(matmul_n, matmul_n, dtype=torch.float32).to(dtype)
    read = time_fn(lambda: x.sum(), warmup=1, repeats=repeats)
    mm = time_fn(lambda: a @ b, warmup=1, repeats=repeats)
    bytes_read = x.numel() * x.element_size()
    return MachineLimits(read_bytes_per_s=bytes_read / (read.min_ms / 1e3),
                         matmul_flops_per_s=2 * matmul_n ** 3 / (mm.min_ms / 1e3),
                         threads=torch.get_num_threads(), dtype=str(dtype).removeprefix("torch."))


def decode_bound_tokens_per_s(limits: MachineLimits, weight_bytes: float, flops_per_token: float,
                              batch: int = 1, kv_bytes_per_row: float = 0.0) -> dict:
    """Roofline bound on greedy-decode throughput: every step reads all weights once (plus each row's KV cache).

    Returns tokens/s allowed by memory (batch x bandwidth / bytes read per step), by compute
    (FLOP/s / FLOPs per token), the bound (the smaller) and which of the two binds.
    """
    if not isinstance(limits, MachineLimits):
        raise TypeError(f"limits must be a MachineLimits (from measure_machine()), got {type(limits).__name__}")
    check_positive(batch=batch)
    weight_bytes = checks.number("weight_bytes", weight_bytes, low=0, low_open=True)
    flops_per_token = checks.number("flops_per_token", flops_per_token, low=0, low_open=True)
    kv_bytes_per_row = checks.number("kv_bytes_per_row", kv_bytes_per_row, low=0)
    step_bytes = weight_bytes + batch * kv_bytes_per_row
    memory = batch * limits.read_bytes_per_s / step_bytes
    compute = limits.matmul_flops_per_s / flops_per_token
    return {"memory_tokens_per_s": memory, "compute_tokens_per_s": compute, "bound_tokens_per_s": min(memory, compute),
            "limited_by": "memory" if memory <= compute else "compute",
            "flops_per_byte": batch * flops_per_token / step_bytes}


# ----------------------------------------------------------------------------- memory
def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _release_freed_memory() -> None:
    """Ask glibc to return freed heap pages to the OS, so RSS starts from what is really in use."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): RSS then over-states the start
        pass


def peak_memory(fn: Callable[[], Any], device: Any = None, interval_s: float = 0.002) -> tuple[Any, float, float]:
    """Run fn(); return (result, peak MB above the start, peak MB in all).

    On CUDA this is the allocator's peak; on CPU it is the process RSS, sampled
    every `interval_s` by a background thread (a lower bound for very short spikes),
    after freed heap pages are returned to the OS so that "above the start" is
    the working memory fn() needs (activations, KV cache), not allocator slack.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        start = torch.cuda.memory_allocated(dev)
        with torch.no_grad():
            out = fn()
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev)
        return out, (peak - start) / 1e6, peak / 1e6
    _release_freed_memory()
    start = _rss_bytes()
    peak = [start]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            stop.wait(interval_s)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        with torch.no_grad():
            out = fn()
    finally:
        stop.set()
        th.join()
    peak[0] = max(peak[0], _rss_bytes())
    return out, (peak[0] - start) / 1e6, peak[0] / 1e6


# ----------------------------------------------------------------------------- ledger
@dataclass(frozen=True)
class Prices:
    """User-set prices: a machine's USD per hour and/or an API's USD per 1M tokens."""

    usd_per_hour: float | None = None
    usd_per_1m_prompt: float | None = None
    usd_per_1m_completion: float | None = None

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is not None:
                object.__setattr__(self, f.name, checks.number(f.name, getattr(self, f.name), low=0,
                                                               hint="USD, or None for no price"))


@dataclass
class CostEntry:
    """One measured item in the ledger; every field carries the unit in its name."""

    name: str
    flops: int | None = None
    wall_ms: float | None = None
    wall_spread_ms: float | None = None
    peak_mb: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    extra: dict = field(default_factory=dict)

    def usd(self, prices: Prices) -> float | None:
        """Return this entry's cost in USD under `prices` (None when no price applies)."""
        total, any_price = 0.0, False
        if prices.usd_per_hour is not None and self.wall_ms is not None:
            total += prices.usd_per_hour * self.wall_ms / 3.6e6
            any_price = True
        if prices.usd_per_1m_prompt is not None:
            total += prices.usd_per_1m_prompt * self.prompt_tokens / 1e6
            any_price = True
        if prices.usd_per_1m_completion is not None:
            total += prices.usd_per_1m_completion * self.completion_tokens / 1e6
            any_price = True
        return total if any_price else None

    def usd_per_1m_tokens(self, prices: Prices) -> float | None:
        """Return USD per 1M completion tokens (None when there are none or no price applies)."""
        usd = self.usd(prices)
        if usd is None or self.completion_tokens == 0:
            return None
        return usd / self.completion_tokens * 1e6


class Ledger:
    """Collect CostEntry rows measured the same way in every notebook; show them as a table."""

    def __init__(self, prices: Prices | None = None):
        self.entries: list[CostEntry] = []
        self.prices = prices or Prices()

    def add(self, name: str, **fields: Any) -> CostEntry:
        """Append an entry (fields as in CostEntry) and return it."""
        known = {f.name for f in dataclasses.fields(CostEntry)}
        extra = {k: fields.pop(k) for k in list(fields) if k not in known}
        entry = CostEntry(name=name, **fields)
        entry.extra.update(extra)
        self.entries.append(entry)
        return entry

    def measure(self, name: str, fn: Callable[[], Any], *, repeats: int = 3, warmup: int = 1,
                flops: bool = True, memory: bool = True, device: Any = None, **fields: Any) -> CostEntry:
        """Measure fn() the standard way (FLOPs once, time after warm-up, peak memory) and add it."""
        fl = measure_flops(fn)[1] if flops else None
        t = time_fn(fn, warmup=warmup, repeats=repeats, device=device)
        peak = peak_memory(fn, device=device)[2] if memory else None  # process peak, weights included
        return self.add(name, flops=fl, wall_ms=t.median_ms, wall_spread_ms=t.spread_ms, peak_mb=peak, **fields)

    def frame(self):
        """Return the ledger as a pandas DataFrame with units in the column names."""
        import pandas as pd

        rows = []
        for e in self.entries:
            row = {
                "name": e.name,
                "GFLOPs": None if e.flops is None else e.flops / 1e9,
                "wall ms": e.wall_ms,
                "± ms": e.wall_spread_ms,
                "peak MB": e.peak_mb,
                "prompt tok": e.prompt_tokens,
                "completion tok": e.completion_tokens,
                "calls": e.calls,
            }
            usd = e.usd(self.prices)
            if usd is not None:
                row["USD"] = usd
                row["USD / 1M tok"] = e.usd_per_1m_tokens(self.prices)
            row.update(e.extra)
            rows.append(row)
        return pd.DataFrame(rows).set_index("name")


def total(entries: Iterable[CostEntry]) -> CostEntry:
    """Sum a set of entries into one (times and tokens add; peak memory is the max)."""
    entries = list(entries)
    def s(attr):
        vals = [getattr(e, attr) for e in entries if getattr(e, attr) is not None]
        return sum(vals) if vals else None
    peaks = [e.peak_mb for e in entries if e.peak_mb is not None]
    return CostEntry("total", flops=s("flops"), wall_ms=s("wall_ms"), peak_mb=max(peaks) if peaks else None,
                     prompt_tokens=s("prompt_tokens") or 0, completion_tokens=s("completion_tokens") or 0,
                     calls=s("calls") or 0)


# ----------------------------------------------------------------------------- the machine
def cpu_model() -> str:
    """The CPU's model name (lscpu's "Model name", from /proc/cpuinfo), else what `platform` knows."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_name() -> str:
    """The BLAS torch's CPU matmuls run on: "MKL" when torch was built with it, else the first BLAS its build names."""
    if torch.backends.mkl.is_available():
        return "MKL"
    info = torch.__config__.show()
    for key in ("OpenBLAS", "BLIS", "Accelerate", "ACL", "oneDNN"):
        if key.lower() in info.lower():
            return key
    return "unknown"


# ----------------------------------------------------------------------------- the price lens
class UnknownPriceSheet(KeyError):
    """A price sheet name that does not exist; the message lists the ones there are."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class PriceSheet:
    """Prices per input (prompt) token and per output (generated) token for named models, in one unit.

    The lens re-prices a trace's token counts per model without running any model again:
    FLOPs per token (the default), "as if" the models were bigger ones (2 x params FLOPs per token),
    or a provider's USD per token with the date of its price list.
    """

    name: str
    unit: str  # "FLOPs", "USD" or "relative"
    input: tuple[tuple[str, float], ...]  # (model, price per input token), cheapest model first
    output: tuple[tuple[str, float], ...]  # (model, price per output token)
    source: str = ""  # where the prices come from, with a date where they can change

    def __post_init__(self):
        for part in ("input", "output"):
            for model, price in getattr(self, part):
                if isinstance(price, bool) or not isinstance(price, numbers.Real) or price != price or price < 0 \
                        or price == float("inf"):
                    raise ValueError(f"price sheet {self.name!r}: the {part} price of {model!r} must be a finite "
                                     f"number >= 0, got {price!r}")
        if [m for m, _ in self.input] != [m for m, _ in self.output]:
            raise ValueError(f"price sheet {self.name!r}: input and output prices must name the same models")

    @property
    def models(self) -> tuple[str, ...]:
        """The models this sheet prices, in its order."""
        return tuple(m for m, _ in self.input)

    def price(self, model: str) -> tuple[float, float]:
        """(price per input token, price per output token) of one model; a clear error when it is not named."""
        prices = dict(self.input)
        if model not in prices:
            raise KeyError(f"the price sheet {self.name!r} names no price for model {model!r}; it prices "
                           f"{list(self.models)}: build a sheet for these models (e.g. nblib.cost.price_sheet"
                           f"({self.name.split(' ')[0]!r}, models=[...]))")
        return prices[model], dict(self.output)[model]

    def cost(self, model: str, input_tokens, output_tokens):
        """Cost of `input_tokens` read and `output_tokens` written by `model` (numbers or numpy arrays)."""
        p_in, p_out = self.price(model)
        return input_tokens * p_in + output_tokens * p_out

    def ratio(self, cheap: str, dear: str) -> float:
        """How many times `dear`'s output token costs `cheap`'s."""
        return self.price(dear)[1] / self.price(cheap)[1]


def reprice(usage, sheet: PriceSheet) -> dict:
    """Re-price token counts per model: usage {model: (input_tokens, output_tokens)} -> {model: cost, "total": ..}.

    Token counts may be numbers or numpy arrays (e.g. per query); every model of `usage` must be on the sheet.
    """
    missing = [m for m in usage if m not in sheet.models]
    if missing:
        raise KeyError(f"the price sheet {sheet.name!r} names no price for {missing}; it prices {list(sheet.models)}")
    out = {m: sheet.cost(m, i, o) for m, (i, o) in usage.items()}
    out["total"] = sum(out.values())
    return out


def flops_sheet(flops_per_token: dict[str, float]) -> PriceSheet:
    """The default lens: each model's FLOPs per token, for input and output alike (a prompt token costs a decode one)."""
    items = tuple(sorted(flops_per_token.items(), key=lambda kv: kv[1]))
    return PriceSheet("FLOPs", "FLOPs", items, items, "measured FLOPs per token of each model")


AS_IF_SIZES = (("0.5B", 0.5e9), ("7B", 7e9), ("70B", 70e9))  # parameters of the "as if" family


def as_if_sheet(models, sizes=AS_IF_SIZES) -> PriceSheet:
    """Price the models (cheapest first) as if they were these sizes: 2 x parameters FLOPs per token each."""
    models = list(models)
    if len(models) != len(sizes):
        raise ValueError(f"the 'as if' sheet maps {len(sizes)} sizes {[s for s, _ in sizes]} onto the ladder; "
                         f"got {len(models)} models {models}: give one model per size, cheapest first")
    items = tuple((m, 2.0 * p) for m, (_, p) in zip(models, sizes))
    label = " / ".join(s for s, _ in sizes)
    return PriceSheet(f"as if {label}", "FLOPs", items, items,
                      "2 x parameters FLOPs per token (dense decoder, short context)")


# USD per 1M tokens (input, output) of named provider models, from the provider's published price list.
PROVIDER_TABLES = {
    "openai-2024-12": {
        "source": "OpenAI API list prices (openai.com/api/pricing) as of December 2024; prices change: check the "
                  "provider's current list",
        "models": (("gpt-4o-mini", 0.15, 0.60), ("gpt-4o", 2.50, 10.00), ("o1", 15.00, 60.00)),
    },
}


def provider_sheet(models, table: str = "openai-2024-12") -> PriceSheet:
    """Price the models (cheapest first) as the provider table's models, in USD per token."""
    if table not in PROVIDER_TABLES:
        raise UnknownPriceSheet(f"no provider price table named {table!r}; tables are {list(PROVIDER_TABLES)}")
    t = PROVIDER_TABLES[table]
    models = list(models)
    if len(models) != len(t["models"]):
        raise ValueError(f"the {table!r} table prices {len(t['models'])} models {[m for m, *_ in t['models']]}; "
                         f"got {len(models)} models {models}: give one model per entry, cheapest first")
    ins = tuple((m, pin / 1e6) for m, (_, pin, _) in zip(models, t["models"]))
    outs = tuple((m, pout / 1e6) for m, (_, _, pout) in zip(models, t["models"]))
    names = " / ".join(n for n, *_ in t["models"])
    return PriceSheet(f"{table} ({names})", "USD", ins, outs, t["source"])


def scaled_sheet(sheet: PriceSheet, ratio: float) -> PriceSheet:
    """The same ladder with its most-to-least expensive output price ratio set to `ratio` (log-prices scaled).

    Every model keeps its place on a log scale between the cheapest and the dearest, so ratio = the sheet's
    own ratio gives back the sheet (up to the unit: "relative", the cheapest output token costs 1).
    """
    import math

    if not isinstance(sheet, PriceSheet):
        raise TypeError(f"sheet must be a PriceSheet (e.g. cost.price_sheet(...)), got {type(sheet).__name__}")
    if not sheet.output:
        raise ValueError(f"sheet {sheet.name!r} prices no model: nothing to scale")
    ratio = checks.number("ratio", ratio, low=1, hint="the price ratio: dearest / cheapest output token")
    outs = dict(sheet.output)
    lo, hi = min(outs.values()), max(outs.values())
    if lo <= 0:
        raise ValueError(f"price sheet {sheet.name!r} has a zero price: it cannot be scaled by ratios")
    span = math.log(hi / lo)
    power = 0.0 if span == 0 else math.log(ratio) / span

    def scale(p: float) -> float:
        return (p / lo) ** power if p > 0 else 0.0

    ins = tuple((m, scale(p) if p > 0 else 0.0) for m, p in sheet.input)
    out = tuple((m, scale(p)) for m, p in sheet.output)
    return PriceSheet(f"{sheet.name} at {ratio:g}x", "relative", ins, out,
                      f"{sheet.name}'s log-prices scaled so the dearest model costs {ratio:g}x the cheapest")


PRICE_SHEETS = ("flops", "as-if", "openai-2024-12")


def price_sheet(name: str, models, flops_per_token: dict[str, float] | None = None) -> PriceSheet:
    """A named price sheet for these models (cheapest first): 'flops', 'as-if' (0.5B / 7B / 70B) or a provider table."""
    if not isinstance(name, str) or name not in PRICE_SHEETS:
        raise UnknownPriceSheet(f"no price sheet named {name!r}; sheets are {list(PRICE_SHEETS)}")
    models = checks.distinct("models", checks.names("models", models, what="model"))
    if name == "flops":
        if flops_per_token is None:
            raise ValueError("the 'flops' sheet needs flops_per_token={model: FLOPs per token}")
        missing = [m for m in models if m not in flops_per_token]
        if missing:
            raise KeyError(f"no FLOPs per token given for {missing}")
        return flops_sheet({m: flops_per_token[m] for m in models})
    if name == "as-if":
        return as_if_sheet(models)
    if name in PROVIDER_TABLES:
        return provider_sheet(models, name)
    raise UnknownPriceSheet(f"no price sheet named {name!r}; sheets are {list(PRICE_SHEETS)}")
