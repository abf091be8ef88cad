"""The slider-panel base every notebook's panel builds on, and the fast PNG encoders it draws with.

A panel keeps one matplotlib figure (Agg, no pyplot) and updates its artists in
place; the PNG goes into an `ipywidgets.Image`.
"""
from __future__ import annotations

import io

from matplotlib.figure import Figure


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
