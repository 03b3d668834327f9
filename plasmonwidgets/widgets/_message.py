"""Visible status and error text for the ipywidgets composites (an HTML child)."""

from __future__ import annotations

import html

__all__ = ["message_html"]

_STYLE = {
    "error": "color: var(--jp-error-color1, #d32f2f); "
    "border-left: 3px solid var(--jp-error-color1, #d32f2f); padding: 2px 6px;",
    "warning": "color: var(--jp-warn-color1, #8a6d3b); "
    "border-left: 3px solid var(--jp-warn-color1, #e6a23c); padding: 2px 6px;",
    "info": "color: var(--jp-ui-font-color2, #616161); padding: 2px 6px;",
}


def message_html(text: str, kind: str = "error") -> str:
    """HTML for an ``ipywidgets.HTML`` message child; '' hides it. ``kind``: error|warning|info."""
    if not text:
        return ""
    role = ' role="alert"' if kind == "error" else (' role="status"' if kind == "warning" else "")
    return f'<div class="pw-message pw-{kind}"{role} style="{_STYLE[kind]}">{html.escape(text)}</div>'
