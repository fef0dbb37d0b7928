"""Pieces shared by the HTML pages: matplotlib on Agg, PNGs as base64, tables, the page.

PNGs are written without timestamps in their metadata, so the same input gives the same page.
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


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a clear error if it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SimclusterError(
            "HTML reports need matplotlib: pip install 'simcluster[report]'."
        ) from None
    return plt


def png(fig: Any) -> str:
    """The figure as base64 PNG (then cleared)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    fig.clf()
    return base64.b64encode(buf.getvalue()).decode("ascii")


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
