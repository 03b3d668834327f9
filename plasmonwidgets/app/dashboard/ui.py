"""Small HTML pieces shared by the tabs."""

from __future__ import annotations

import ipywidgets as ipw

from plasmonwidgets.widgets._message import message_html

__all__ = ["intro", "note"]


def intro(text: str) -> ipw.HTML:
    """A tab's explanatory paragraph, at text line spacing (not one widget row per line)."""
    return ipw.HTML(f"<div style='line-height:1.4;margin:4px 0'>{text}</div>")


def note(text: str, kind: str = "info") -> ipw.HTML:
    """A one-line message (``kind``: "info", "warning" or "error")."""
    return ipw.HTML(message_html(text, kind))
