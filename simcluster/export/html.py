"""Pieces shared by the HTML pages: matplotlib figures, PNGs as base64, tables, the page.

Figures are made with matplotlib's object-oriented API (``matplotlib.figure.Figure``), never
through pyplot, so writing a report leaves the caller's pyplot backend (Jupyter's inline
one, say) as it was. PNGs are written without timestamps in their metadata, so the same
input gives the same page.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from simcluster.errors import SimclusterError

_STYLE = """body { font-family: sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 16px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f0f0f0; } img { max-width: 100%; display: block; }
.big { font-size: 28px; font-weight: bold; }"""


def figure(width_in: float, height_in: float) -> tuple[Any, Any]:
    """A new matplotlib Figure of that size (inches) and its axes, outside pyplot; a clear
    error if matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise SimclusterError(
            "plots and HTML reports need matplotlib: pip install 'simcluster[report]'."
        ) from None
    fig = Figure(figsize=(width_in, height_in))
    return fig, fig.subplots()


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes (100 dpi, tight, no timestamp)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def png(fig: Any) -> str:
    """The figure as base64 PNG."""
    return base64.b64encode(png_bytes(fig)).decode("ascii")


def img(name: str, data: str) -> str:
    return f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'


def table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML document."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
{_STYLE}
</style></head><body>
{body}
</body></html>
"""
