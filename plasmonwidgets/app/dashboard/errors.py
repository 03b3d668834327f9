"""How the dashboard reports problems: an error box, a notice line, no server paths.

Every callback the dashboard owns is wrapped by :meth:`ErrorReporting.guard`: an exception
shows as ``Type: message`` in the error box (its traceback goes to the server's terminal
only) and warnings raised meanwhile appear in the notice line. Every message goes through
:func:`~plasmonwidgets.widgets.loading.redact_paths`. With ``catch_widget_errors=True``
(the Voila page) exceptions in other widgets' callbacks and warnings from any thread are
routed there too (:meth:`ErrorReporting._install_error_hooks`).
"""

from __future__ import annotations

import html
import logging
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plasmonwidgets.widgets._message import message_html
from plasmonwidgets.widgets.loading import for_the_user, redact_paths

__all__ = ["ErrorReporting"]

# plasmonwidgets/, named "plasmonwidgets" in messages (three levels up from this file)
_PACKAGE_DIR = str(Path(__file__).resolve().parents[2])


class ErrorReporting:
    """The dashboard's error box and notice line (a part of :class:`Dashboard`).

    Uses ``error_box``, ``dismiss_button``, ``notice_box``, ``chooser``, ``_redactions``
    and ``_hooks`` of the dashboard.

    Examples
    --------
    >>> dash = Dashboard()                                        # doctest: +SKIP
    >>> dash.guard(lambda: 1 / 0, "dividing")()                   # doctest: +SKIP
    >>> "ZeroDivisionError" in dash.error_box.value                 # doctest: +SKIP
    True
    """

    def guard(self, fn: Callable[..., Any], what: str = "") -> Callable[..., Any]:
        """``fn`` wrapped so an exception shows in the error box instead of propagating."""

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            # warnings are shown on the page (paths removed), not sent to its stderr stream
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    self.show_error(exc, what)
                    return None
                finally:
                    self.show_warnings(for_the_user(caught), what)

        wrapped.__name__ = getattr(fn, "__name__", "callback")
        wrapped.__doc__ = getattr(fn, "__doc__", None)
        return wrapped

    def show_error(self, error: BaseException | str, context: str = "") -> None:
        """Show an error (exception or text) in the visible error box; no traceback."""
        if isinstance(error, BaseException):
            # the full traceback goes to the server's terminal only, never to the page
            if sys.__stderr__ is not None:
                print(f"plasmonwidgets dashboard: error while {context or 'working'}:",
                      file=sys.__stderr__)
                traceback.print_exception(type(error), error, error.__traceback__,
                                          file=sys.__stderr__)
            text = f"{type(error).__name__}: {error}"
        else:
            text = str(error)
        text = self._redact(text)
        where = f"Error while {context}: " if context else "Error: "
        self.error_box.value = (
            '<div class="pw-error-box" role="alert" style="color:var(--jp-error-color1,#b71c1c);'
            'background:var(--jp-error-color3,#fdecea);'
            'border:1px solid var(--jp-error-color2,#f5c6cb);border-radius:4px;padding:6px 10px;">'
            f"<b>{html.escape(where)}</b>{html.escape(text)}</div>"
        )
        self.dismiss_button.layout.display = ""

    def clear_error(self) -> None:
        self.error_box.value = ""
        self.dismiss_button.layout.display = "none"

    def show_warnings(self, texts: list[str], context: str = "") -> None:
        """Show warning texts (each once, server paths removed) in the notice line.

        An empty list leaves the line as it is; :meth:`clear_warnings` empties it.
        """
        shown: list[str] = []
        for text in texts:
            text = self._redact(str(text))
            if text not in shown:
                shown.append(text)
        if not shown:
            return
        where = f"Note while {context}: " if context else "Note: "
        self.notice_box.value = message_html(where + " | ".join(shown), "warning")

    def clear_warnings(self) -> None:
        self.notice_box.value = ""

    @property
    def notice_text(self) -> str:
        """The warnings shown, as plain text ('' when none)."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.notice_box.value))

    @property
    def error_text(self) -> str:
        """The error shown, as plain text ('' when none)."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.error_box.value))

    def _reporting(self, what: str):
        dashboard = self

        class _Ctx:
            def __enter__(self):
                return self

            def __exit__(self, exc_type, exc, tb):
                if exc is not None and isinstance(exc, Exception):
                    dashboard.show_error(exc, what)
                    return True
                return False

        return _Ctx()

    def _redact(self, text: str) -> str:
        """Remove server paths from a message: a user's files by the names the user knows
        them by, the data folder, the package and the environment by labels, and any other
        absolute path by its last component."""
        pairs = [*self._redactions, (_PACKAGE_DIR, "plasmonwidgets"), (sys.prefix, "<env>")]
        if self.chooser is not None:
            pairs += self.chooser.redactions().items()
        return redact_paths(text, pairs)

    def _install_error_hooks(self) -> None:
        """Route exceptions from other widgets' callbacks into the error box.

        ipywidgets reports exceptions in button/message handlers with the shell's
        ``showtraceback`` and the comm layer logs exceptions raised while applying
        browser state; on a Voila page nobody sees either.
        """
        dashboard = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.exc_info and record.exc_info[1] is not None:
                    dashboard.show_error(record.exc_info[1], "handling a widget event")

        handler = _Handler(level=logging.ERROR)
        loggers = [logging.getLogger(name) for name in ("Comm", "ipykernel.comm")]
        for lg in loggers:
            lg.addHandler(handler)
        self._hooks.append(lambda: [lg.removeHandler(handler) for lg in loggers])

        # warnings from any thread (training, decoding) reach the notice line, not stderr
        original_showwarning = warnings.showwarning

        def showwarning(message, category, filename, lineno, file=None, line=None):
            record = warnings.WarningMessage(message, category, filename, lineno, file, line)
            shown = for_the_user([record])
            if shown:
                dashboard.show_warnings(shown)
            elif sys.__stderr__ is not None:  # developers' warnings: the server's terminal
                print(warnings.formatwarning(message, category, filename, lineno, line),
                      file=sys.__stderr__, end="")

        warnings.showwarning = showwarning
        self._hooks.append(lambda: setattr(warnings, "showwarning", original_showwarning))
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython ships with ipykernel
            return
        shell = get_ipython()
        if shell is None:
            return
        original = shell.showtraceback

        def showtraceback(*args: Any, **kwargs: Any) -> None:
            exc = sys.exc_info()[1]
            if exc is None:
                return original(*args, **kwargs)
            dashboard.show_error(exc, "handling a widget event")
            return None

        shell.showtraceback = showtraceback
        self._hooks.append(lambda: setattr(shell, "showtraceback", original))
