"""Pieces shared by the HTML pages: interactive figures, tables, the page.

A page embeds plotly.js once, in its head, and each figure as a ``<div>`` with a fixed id, so
the file opens without network access and the same input gives the same bytes.
"""

from __future__ import annotations

import html
from typing import Any

from simcluster.errors import SimclusterError

_STYLE = """body { font-family: sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 16px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f0f0f0; } .big { font-size: 28px; font-weight: bold; }
.note { color: #666; }"""


def figure_html(fig: Any, div_id: str) -> str:
    """A Plotly figure as a ``<div>`` (plotly.js comes from the page's head)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def plotly_js() -> str:
    """The plotly.js bundle that ships with the plotly package, for inlining."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise SimclusterError("HTML reports need plotly: pip install "
                              "'simcluster[report]'.") from None
    return get_plotlyjs()


def table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str, scripts: bool = True) -> str:
    """A complete, self-contained HTML document (with plotly.js inlined when ``scripts``)."""
    js = f'<script type="text/javascript">{plotly_js()}</script>' if scripts else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
{_STYLE}
</style>{js}</head><body>
{body}
</body></html>
"""
