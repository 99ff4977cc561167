"""Widgets that stay interactive in a static HTML page.

A chapter built into HTML has no Python kernel, so a widget whose callbacks run Python
freezes there. When the space to explore is small enough to precompute, these helpers
render every figure up front and switch between them in the browser: the figures go in
an ``ipywidgets.Stack`` whose ``selected_index`` is linked (``jslink``, pure JavaScript)
to the control. The widget state saved in the notebook carries the images, so the page
works with no kernel and no network.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

from .._plumbing import require

__all__ = ["figure_png", "live_explorer", "precomputed_explorer", "scroll_table"]


def figure_png(fig: Any, *, dpi: int = 90) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    plt = require("matplotlib.pyplot", "interp_lib.viz.figure_png")

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _image(png: bytes):
    W = require("ipywidgets", "interp_lib.viz")

    return W.Image(value=png, format="png", layout=W.Layout(max_width="100%"))


def _slider_stack(name: str, values: Sequence[Any], pngs: Sequence[bytes]):
    W = require("ipywidgets", "interp_lib.viz")

    stack = W.Stack([_image(p) for p in pngs], selected_index=0)
    slider = W.SelectionSlider(
        options=[(str(v), i) for i, v in enumerate(values)],
        value=0,
        description=name,
        continuous_update=True,
        style={"description_width": "initial"},
    )
    W.jslink((slider, "index"), (stack, "selected_index"))
    return slider, stack


def precomputed_explorer(
    render: Callable[..., Any],
    *,
    slider: tuple[str, Sequence[Any]],
    menu: tuple[str, Sequence[Any]] | None = None,
    dpi: int = 90,
):
    """An explorer over a precomputed grid that works in static HTML.

    Parameters
    ----------
    render : callable
        ``render(s)``, or ``render(m, s)`` with a menu, returns a matplotlib Figure for
        the slider value ``s`` (and menu value ``m``).
    slider : (label, values)
        The values a slider steps through.
    menu : (label, values), optional
        A second control (a drop-down); each of its values gets its own slider page.
    dpi : int

    Returns
    -------
    ipywidgets.VBox
        With attributes ``controls`` (the drop-down, if any, then the sliders) and
        ``stacks`` (the ``Stack`` widgets holding the figures), for tests.
    """
    W = require("ipywidgets", "interp_lib.viz.precomputed_explorer")

    s_name, s_values = slider
    if not s_values:
        raise ValueError("slider needs at least one value.")
    if menu is None:
        sl, stack = _slider_stack(
            s_name, s_values, [figure_png(render(v), dpi=dpi) for v in s_values]
        )
        box = W.VBox([sl, stack])
        box.controls, box.stacks = [sl], [stack]
        return box
    m_name, m_values = menu
    pages, sliders, stacks = [], [], []
    for m in m_values:
        pngs = [figure_png(render(m, v), dpi=dpi) for v in s_values]
        sl, stack = _slider_stack(s_name, s_values, pngs)
        pages.append(W.VBox([sl, stack]))
        sliders.append(sl)
        stacks.append(stack)
    outer = W.Stack(pages, selected_index=0)
    dropdown = W.Dropdown(
        options=[(str(m), i) for i, m in enumerate(m_values)], value=0, description=m_name
    )
    W.jslink((dropdown, "index"), (outer, "selected_index"))
    box = W.VBox([dropdown, outer])
    box.controls, box.stacks = [dropdown, *sliders], [outer, *stacks]
    return box


def live_explorer(render: Callable[..., Any], controls: dict[str, Any], *, dpi: int = 90):
    """An explorer whose figure is recomputed by Python when a control changes.

    Needs a running kernel (Jupyter, Binder, Colab); in static HTML it shows the first
    figure only. Use :func:`precomputed_explorer` for pages without a kernel.

    Parameters
    ----------
    render : callable
        ``render(**{name: control.value})`` returns a matplotlib Figure.
    controls : dict of str to ipywidgets.ValueWidget

    Returns
    -------
    ipywidgets.VBox
        With attributes ``controls`` (dict) and ``image`` (the ``Image`` widget updated
        on every change).
    """
    W = require("ipywidgets", "interp_lib.viz.live_explorer")

    image = W.Image(format="png", layout=W.Layout(max_width="100%"))

    def update(_=None):
        image.value = figure_png(render(**{k: c.value for k, c in controls.items()}), dpi=dpi)

    for c in controls.values():
        c.observe(update, names="value")
    update()
    box = W.VBox([W.HBox(list(controls.values())), image])
    box.controls, box.image = controls, image
    return box


class _HtmlTable:
    """HTML that Jupyter and MyST-NB display as it is (and print as text elsewhere)."""

    def __init__(self, html: str, text: str) -> None:
        self.html, self.text = html, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def scroll_table(table: Any, *, float_format: str | None = None, font_size: str = "0.85em"):
    """A pandas table that fits the page column: headers wrap, and a table still wider
    than the column scrolls sideways with a visible scroll bar (nothing is cut).

    Parameters
    ----------
    table : pandas.DataFrame or Styler-free frame
    float_format : str, optional
        A format spec for floats (e.g. ``".3f"``).
    font_size : str
        CSS font size of the table.

    Returns
    -------
    An object displayed as the HTML table by Jupyter (``repr`` gives the plain text).
    """
    formatter = None if float_format is None else (lambda v: format(v, float_format))
    inner = table.to_html(float_format=formatter, na_rep="", border=0)
    style = (
        f"overflow-x:auto; max-width:100%; font-size:{font_size}; "
        "scrollbar-width:auto; padding-bottom:4px"
    )
    css = (
        "<style>.scroll-table th{white-space:normal; word-break:break-word; "
        "max-width:12em} .scroll-table td{white-space:nowrap}</style>"
    )
    html = f'{css}<div class="scroll-table" style="{style}">{inner}</div>'
    return _HtmlTable(html, table.to_string(na_rep="", float_format=formatter))
