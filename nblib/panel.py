"""The slider-panel base every notebook's panel builds on, and the fast PNG encoders it draws with.

A panel keeps one matplotlib figure (Agg, no pyplot) and moves its artists in
place; the PNG goes into an `ipywidgets.Image`. A subclass declares only what
differs:

- its sliders: a dict name -> widget passed to `SliderPanel.__init__`;
- `compute(**values)`: the state at those slider values, pure (no widget is
  read or written), so `panel.state(batch=4, seq=32, new=64)` is testable
  with plain values (`panel.state()` fills the missing values from the sliders);
- `build(fig)`: create the figure's artists once (in the suite's style);
- `draw(state)`: move those artists and return the readout (HTML; plain text is fine).

The base owns the rest: the readout (`label`, an `ipywidgets.HTML`), the PNG
`image`, the observers, `set(**values)` (several sliders, one redraw),
`values()`, timing (`last_update_ms`), `redraws`, display, and the
CSS hooks: `<prefix>-<slider name>` on each slider, `<prefix>-readout` on the
readout, `<prefix>-plot` on the image, `<prefix>-panel` on the whole panel
(`prefix` is the notebook, e.g. "nb00"; names are lower-cased, `_` -> `-`).

One update policy for every panel: `continuous_update = False` on every slider
that has the trait, i.e. the panel redraws once when a drag ends (or per key
press), not on every pixel of a drag: over a busy kernel a drag would queue
dozens of redraws that the reader then watches replay.

Display: `_repr_mimebundle_` gives the widget view (JupyterLab, Voila: the live
panel) together with the current figure as `image/png` and the readout as
`text/plain`, so a notebook read without a kernel (nbconvert, nbviewer, GitHub)
still shows the figure the cell produced. A frontend picks the richest type it
can render; nbconvert skips the widget view when the notebook holds no saved
widget state for it.

Two ways to render: a full figure redraw (`figure_png`, the default), or
blitting (`blit = True`): `build` returns the artists a move changes; they are
marked animated, the rest is drawn once into a cached background, and each
update draws only those artists over it (axis limits must then stay fixed).
"""
from __future__ import annotations

import io
import re
import time
from contextlib import contextmanager

from matplotlib.figure import Figure

from . import style


def canvas_png(canvas) -> bytes:
    """Encode an Agg canvas's current pixels as PNG (low compression: fast), without redrawing."""
    from PIL import Image

    buf = io.BytesIO()
    Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def figure_png(fig: Figure) -> bytes:
    """Render a figure at its own dpi to PNG bytes, fast (Agg draw + low PNG compression)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return canvas_png(canvas)


def _same(a, b) -> bool:
    """Equal as slider values (numbers within float rounding; anything else by ==)."""
    import math
    import numbers

    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 (an array option compared elementwise: not a match)
        return False


def _brief(values: list, n: int = 12) -> str:
    """A list for an error message, shortened in the middle when long."""
    if len(values) <= n:
        return repr(values)
    return f"[{', '.join(map(repr, values[:n // 2]))}, ..., {', '.join(map(repr, values[-2:]))}] ({len(values)} values)"


def css_hook(prefix: str, name: str) -> str:
    """The CSS class of a panel part: css_hook("nb07", "top_k") -> "nb07-top-k"."""
    return f"{prefix}-" + re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")


class SliderPanel:
    """Base of the notebooks' slider panels: sliders -> pure `compute` -> `draw` on one persistent Agg figure."""

    prefix = "nb"                   # the notebook: CSS hooks are f"{prefix}-..."
    continuous_update = False       # the one update policy of every panel (see the module docstring)
    blit = False                    # True: redraw only the artists `build` returns, over a cached background
    figsize: tuple[float, float] = (10, 3.3)
    dpi = 80

    def __init__(self, sliders: dict):
        import ipywidgets as W

        self.sliders = dict(sliders)
        for name, w in self.sliders.items():
            if w.has_trait("continuous_update"):
                w.continuous_update = self.continuous_update
            w.add_class(css_hook(self.prefix, name))
        self.label = W.HTML()
        self.label.add_class(css_hook(self.prefix, "readout"))
        self.image = W.Image(format="png")
        self.image.add_class(css_hook(self.prefix, "plot"))
        self.last_update_ms = float("nan")
        self.redraws = 0
        self._hold = False
        with style.context():
            self.fig = Figure(figsize=self.figsize, dpi=self.dpi)
            animated = self.build(self.fig) or []
            self.fig.tight_layout()
            self._init_canvas(animated)
        for w in self.sliders.values():
            w.observe(self._on_change, names="value")
        self.update()
        self.widget = W.VBox([self.controls(), self.label, self.image])
        self.widget.add_class(css_hook(self.prefix, "panel"))

    # --- what a subclass declares -------------------------------------------------------------
    def compute(self, **values) -> dict:
        """The panel's state at these slider values (pure: reads no widget); subclasses define it."""
        raise NotImplementedError

    def build(self, fig: Figure):
        """Create the figure's artists once; with `blit`, return the artists a move changes."""
        raise NotImplementedError

    def draw(self, state: dict) -> str:
        """Move the figure's artists to `state`; return the readout (HTML or plain text)."""
        raise NotImplementedError

    def controls(self):
        """The sliders' layout (default: one row); override for another arrangement."""
        import ipywidgets as W

        return W.HBox(list(self.sliders.values()))

    # --- what the base owns -------------------------------------------------------------------
    def values(self) -> dict:
        """The sliders' current values, by name."""
        return {name: w.value for name, w in self.sliders.items()}

    def state(self, **values) -> dict:
        """The state at these slider values; names not given take the sliders' current values. Pure."""
        self._check_names(values)
        full = {name: values[name] if name in values else w.value for name, w in self.sliders.items()}
        return self.compute(**full)

    def _check_names(self, values: dict) -> None:
        unknown = set(values) - set(self.sliders)
        if unknown:
            raise TypeError(f"unknown slider(s) {sorted(unknown)}; this panel has {list(self.sliders)}")
        for name, v in values.items():
            self.check_value(name, v)

    def check_value(self, name: str, value):
        """`value` when slider `name` can take it, else a `checks.BadArgument` naming the slider and its range.

        A selection slider takes one of its options; a numeric slider a finite number within [min, max] (a whole
        number for an integer slider); a checkbox a bool. Nothing is clamped or snapped silently.
        """
        from . import checks

        w = self.sliders[name]
        options = getattr(w, "options", None)
        if options is not None:
            valid = [o[1] if isinstance(o, tuple) and len(o) == 2 else o for o in options]
            if not any(_same(value, o) for o in valid):
                raise checks.BadArgument(f"slider {name!r} takes one of {_brief(valid)}, got {value!r}")
            return value
        if isinstance(getattr(w, "value", None), bool):
            if not isinstance(value, bool):
                raise checks.BadArgument(f"slider {name!r} takes True or False, got {value!r}")
            return value
        if hasattr(w, "min") and hasattr(w, "max"):
            lo, hi = w.min, w.max
            if hasattr(w, "base"):                       # FloatLogSlider: min and max are exponents
                lo, hi = w.base ** lo, w.base ** hi
            if isinstance(w.value, int):
                return checks.whole(f"slider {name!r}", value, low=lo, high=hi)
            checks.number(f"slider {name!r}", value, low=lo, high=hi)
        return value

    @contextmanager
    def hold(self):
        """Inside this block slider changes do not redraw (call `update()` after it)."""
        held, self._hold = self._hold, True
        try:
            yield
        finally:
            self._hold = held

    def set(self, **values) -> None:
        """Move several sliders at once and redraw once (even when no value changed)."""
        self._check_names(values)
        try:
            with self.hold():
                for name, v in values.items():
                    self.sliders[name].value = v
        finally:
            self.update()

    def update(self) -> None:
        """Recompute the state at the sliders' current values, redraw the figure and the readout."""
        t0 = time.perf_counter()
        st = self.state()
        with style.context():   # text and ticks created while drawing get the suite's look too
            readout = self.draw(st)
            png = self._render()
        self.image.value = png
        self.label.value = readout
        self.redraws += 1
        self.last_update_ms = (time.perf_counter() - t0) * 1e3

    def _init_canvas(self, animated: list) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.canvas = FigureCanvasAgg(self.fig)
        self.animated = list(animated) if self.blit else []
        self.background = None
        if self.blit:
            for a in self.animated:
                a.set_animated(True)
            self.canvas.draw()
            self.background = self.canvas.copy_from_bbox(self.fig.bbox)

    def _render(self) -> bytes:
        if not self.blit:
            return figure_png(self.fig)
        self.canvas.restore_region(self.background)
        for a in self.animated:
            a.axes.draw_artist(a)
        return canvas_png(self.canvas)

    def _on_change(self, change) -> None:
        if not self._hold:
            self.update()

    # --- display: the live view for a kernel, the current figure for every static reader ---------
    def readout_text(self) -> str:
        """The readout as plain text (tags dropped, entities decoded): the panel's `text/plain` line."""
        import html

        text = re.sub(r"<br\s*/?>|</p>|</div>|</li>", "\n", str(self.label.value), flags=re.I)
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
        return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())

    def png(self) -> bytes:
        """The figure as shown now (the last redraw's PNG bytes)."""
        return bytes(self.image.value)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        """The widget view (a live kernel shows the panel) beside the current figure as `image/png` and the readout as
        `text/plain`: nbconvert, nbviewer and GitHub show the figure where no kernel runs the widget."""
        import base64

        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["image/png"] = base64.b64encode(self.png()).decode("ascii")
        readout = self.readout_text()
        bundle["text/plain"] = f"{type(self).__name__}" + (f": {readout}" if readout else "")
        if include:
            bundle = {k: v for k, v in bundle.items() if k in include}
        if exclude:
            bundle = {k: v for k, v in bundle.items() if k not in exclude}
        return bundle
