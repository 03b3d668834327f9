"""Small HTML pieces shared by the tabs, and the dashboard's theme style sheet."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import ipywidgets as ipw

from plasmonwidgets.widgets._message import message_html

__all__ = ["intro", "note", "theme_style"]

#: CSS that makes the dashboard's figures follow the JupyterLab / Voila theme
THEME_CSS = Path(__file__).resolve().parent / "theme.css"


@cache
def _theme_css() -> str:
    return THEME_CSS.read_text(encoding="utf-8")


def theme_style() -> ipw.HTML:
    """A hidden widget holding the theme style sheet (``theme.css``).

    Shipped inside the page as a widget, so it applies wherever the dashboard is shown:
    Voila (``--theme=dark``) and JupyterLab alike.

    Examples
    --------
    >>> theme_style().layout.display
    'none'
    """
    style = ipw.HTML(f"<style>{_theme_css()}</style>", layout={"display": "none"})
    style.add_class("pw-theme-style")
    return style


def intro(text: str) -> ipw.HTML:
    """A tab's explanatory paragraph, at text line spacing (not one widget row per line).

    Examples
    --------
    >>> type(intro("Train a model on one half of the scan.")).__name__
    'HTML'
    """
    return ipw.HTML(f"<div style='line-height:1.4;margin:4px 0'>{text}</div>")


def note(text: str, kind: str = "info") -> ipw.HTML:
    """A one-line message (``kind``: "info", "warning" or "error").

    Examples
    --------
    >>> "No model yet" in note("No model yet: train one first.", kind="warning").value
    True
    """
    return ipw.HTML(message_html(text, kind))
