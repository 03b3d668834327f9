"""ChunkedUpload: an upload button that streams files to the kernel in pieces.

``ipywidgets.FileUpload`` sends a whole file in one websocket message. The Jupyter
server (Tornado) drops the connection on any message over 10 MiB, so under Voila a
large upload silently disconnects the page. This widget instead

- refuses files over ``max_bytes`` in the browser, before reading a byte of them (the
  kernel is told, so the Python side can show the refusal as well);
- sends accepted files as ``chunk_bytes`` binary pieces, one at a time: the browser
  reads the next piece only after the kernel acknowledged the previous one, so neither
  side ever holds a whole file and no message comes near the server's limit;
- writes every piece straight to the file that ``destination(name, size)`` names,
  re-checking the running size: a client that sends more than it announced, or more
  than the limit, is cut off and its partial file deleted.

Limits are enforced in the kernel only. The page is a client anyone can script: the
synced traits ``max_bytes`` and ``disabled`` merely *show* the limit and the on/off
state, the page may not change any trait (:meth:`ChunkedUpload.set_state` drops such
updates), and every check reads the Python-only attributes behind
:attr:`ChunkedUpload.limit_bytes` and :attr:`ChunkedUpload.enabled`.

Messages (custom widget messages, JSON content plus binary buffers), browser to kernel:
``{"type": "refused", "batch", "name", "size"}``; ``{"type": "start", "id", "batch",
"name", "size"}``; ``{"type": "chunk", "id", "offset"}`` with one buffer;
``{"type": "cancel", "id", "reason"}``. Kernel to browser: ``{"type": "ack", "id",
"received"}``, ``{"type": "done", "id", "name", "size"}`` and ``{"type": "error", "id",
"message"}``. Sizes and offsets are in bytes. ``batch`` groups the files of one
selection, so their problems are reported together.

Nothing here raises into the comm handler: every failure ends the transfer concerned,
goes back to the browser as an ``error`` reply and to the ``on_problem`` callbacks.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import anywidget
import traitlets as t

__all__ = ["MIB", "ChunkedUpload", "too_large_message"]

MIB = 1024 * 1024
_STATIC = Path(__file__).parent / "static"
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_OPEN = 4  # transfers open at once; the browser sends one file at a time
STALE_S = 600.0  # a transfer idle this long (browser tab gone) is dropped on the next start


def too_large_message(name: str, size: int, max_bytes: int, hint: str = "") -> str:
    """``'<name>' is <size> MB, over the <max> MB upload limit[; hint]``; sizes in bytes.

    Examples
    --------
    >>> too_large_message("scan.dm4", 300 * MIB, 200 * MIB, "ask for a data folder")
    "'scan.dm4' is 300.0 MB, over the 200 MB upload limit; ask for a data folder"
    """
    text = f"'{name}' is {size / MIB:.1f} MB, over the {max_bytes / MIB:g} MB upload limit"
    return f"{text}; {hint}" if hint else text


class _Stop(Exception):
    """An upload cannot go on; the message tells the user why."""


@dataclass
class _Transfer:
    name: str
    size: int  # announced, bytes
    path: Path
    handle: BinaryIO
    received: int = 0  # bytes written so far
    touched: float = field(default_factory=time.monotonic)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class ChunkedUpload(anywidget.AnyWidget):
    """Upload button that refuses large files in the browser and streams the others.

    Parameters
    ----------
    destination : callable ``(name, size_bytes) -> Path``
        Where to write an announced file: a path that does not exist yet (it is
        created exclusively). It sanitises the name and may refuse the file by raising
        ValueError (its message is shown) or OSError.
    accept : str
        Comma-separated file endings offered by the browser's picker (e.g. ``.dm4,.emd``).
    max_bytes : int
        Largest accepted file, bytes (:attr:`limit_bytes`). Checked in the browser before
        sending (a courtesy), and in the kernel against the announced size and every piece.
    chunk_bytes : int
        Bytes per message (default 1 MiB; at most 8 MiB, below Tornado's 10 MiB cap).
    too_large_hint : str
        Advice appended to the "over the upload limit" message.
    multiple, description, disabled : as for ``ipywidgets.FileUpload``.

    ``value`` takes ``FileUpload``-style dicts (``name``, ``content``) from Python code;
    each is stored like a browser upload and ``value`` is reset to ``()``. It is not
    synced: file contents never travel back to the browser.

    Python code may set ``max_bytes`` and ``disabled`` (or :attr:`limit_bytes` and
    :attr:`enabled`); the page cannot: its trait updates are dropped.

    Examples
    --------
    >>> up = ChunkedUpload(destination=lambda name, size: Path("/tmp") / name, max_bytes=MIB)
    >>> up.limit_bytes
    1048576
    """

    _esm = _STATIC / "upload.js"
    _css = _STATIC / "upload.css"

    description = t.Unicode("Upload").tag(sync=True)
    accept = t.Unicode("").tag(sync=True)
    multiple = t.Bool(True).tag(sync=True)
    disabled = t.Bool(False).tag(sync=True)
    max_bytes = t.Int(200 * MIB, min=1).tag(sync=True)
    chunk_bytes = t.Int(MIB, min=1024, max=8 * MIB).tag(sync=True)
    too_large_hint = t.Unicode("").tag(sync=True)
    value = t.Tuple()

    def __init__(self, destination: Callable[[str, int], Path], **kwargs: Any):
        super().__init__(**kwargs)
        # the authoritative limit and switch: plain attributes the page has no way to reach
        self._limit_bytes = int(self.max_bytes)
        self._enabled = not self.disabled
        self.observe(self._on_python_setting, ["max_bytes", "disabled"])
        self._destination = destination
        self._transfers: dict[str, _Transfer] = {}
        self._file_callbacks: list[Callable[[Path], Any]] = []
        self._problem_callbacks: list[Callable[[str], Any]] = []
        self._batch: Any = None
        self._local_ids = itertools.count()
        #: messages about the files of the latest selection (refusals, failed transfers)
        self.problems: list[str] = []
        self.on_msg(self._on_msg)
        self.observe(self._on_value, "value")

    # -- public API ------------------------------------------------------------------
    def on_file(self, callback: Callable[[Path], Any]) -> None:
        """Register ``callback(path)``, run when a file is completely stored."""
        self._file_callbacks.append(callback)

    def on_problem(self, callback: Callable[[str], Any]) -> None:
        """Register ``callback(message)``, run for each refused or failed file."""
        self._problem_callbacks.append(callback)

    @property
    def limit_bytes(self) -> int:
        """Largest accepted file in bytes, as the kernel enforces it."""
        return self._limit_bytes

    @limit_bytes.setter
    def limit_bytes(self, value: int) -> None:
        self.max_bytes = value  # validated by the trait; _on_python_setting copies it

    @property
    def enabled(self) -> bool:
        """Whether the kernel accepts uploads (``not disabled``, as Python code set it)."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self.disabled = not value

    def set_state(self, sync_data: dict) -> None:
        """Refuse trait updates from the page and show it the kernel's values again.

        Only Python code configures this widget; a page sending ``max_bytes: 1e9`` or
        ``disabled: false`` changes nothing in the kernel.
        """
        keys = [k for k in (sync_data or {}) if k in self.keys]
        if keys:
            self.log.warning("upload widget: ignored the page's update of %s", ", ".join(keys))
            self.send_state(keys)

    def _on_python_setting(self, change: dict) -> None:
        # set_state above drops page updates, so only kernel code gets here
        if change["name"] == "max_bytes":
            self._limit_bytes = int(change["new"])
        else:
            self._enabled = not change["new"]

    @property
    def in_progress(self) -> dict[str, tuple[str, int, int]]:
        """Open transfers: id -> (name, bytes received, bytes announced)."""
        return {uid: (tr.name, tr.received, tr.size) for uid, tr in self._transfers.items()}

    def close(self) -> None:
        """Stop open transfers (their partial files are deleted) and close the widget."""
        for uid in list(self._transfers):
            self._discard(uid)
        super().close()

    # -- browser messages --------------------------------------------------------------
    def _on_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        try:
            self._handle(content, list(buffers or []))
        except Exception as exc:  # a bug here must not propagate into the comm layer
            uid = content.get("id") if isinstance(content, dict) else None
            if isinstance(uid, str):
                self._discard(uid)
                self._reply({"type": "error", "id": uid, "message": "upload failed in the kernel"})
            self._problem(f"upload failed in the kernel: {type(exc).__name__}: {exc}")

    def _handle(self, content: Any, buffers: list) -> None:
        if not isinstance(content, dict):
            self._problem("ignored a malformed upload message from the browser")
            return
        kind = content.get("type")
        if kind == "refused":
            self._new_batch(content.get("batch"))
            name, size = content.get("name"), content.get("size")
            if isinstance(name, str) and _is_count(size):
                # the limit quoted is ours, not whatever the browser believed
                self._problem(too_large_message(name, size, self._limit_bytes, self.too_large_hint))
            else:
                self._problem("the browser refused a file that is over the upload limit")
            return
        uid = content.get("id")
        if not isinstance(uid, str) or not _ID.fullmatch(uid):
            self._problem("ignored an upload message without a valid transfer id")
            return
        try:
            if kind == "start":
                self._new_batch(content.get("batch"))
                done = self._begin(uid, content.get("name"), content.get("size"))
            elif kind == "chunk":
                done = self._append(uid, content.get("offset"), buffers)
            elif kind == "cancel":
                tr = self._transfers.get(uid)
                reason = str(content.get("reason") or "no reason given")[:200]
                what = repr(tr.name) if tr else "a file"
                raise _Stop(f"the upload of {what} was stopped by the browser: {reason}")
            else:
                raise _Stop(f"unknown upload message type {str(kind)[:40]!r}")
        except _Stop as stop:
            self._discard(uid)
            self._reply({"type": "error", "id": uid, "message": str(stop)})
            self._problem(str(stop))
            return
        if done:
            self._complete(uid, reply=True)
        else:
            self._reply({"type": "ack", "id": uid, "received": self._transfers[uid].received})

    # -- the transfer itself -------------------------------------------------------------
    def _begin(self, uid: str, name: Any, size: Any) -> bool:
        """Open the destination file; True when there is nothing more to receive."""
        if not isinstance(name, str) or not name or not _is_count(size):
            raise _Stop("the browser announced a file without a valid name and size; upload it again")
        if not self._enabled:  # the button is greyed out, but a client may still send
            raise _Stop(f"{name!r}: uploads are switched off here")
        if uid in self._transfers:
            raise _Stop(f"{name!r}: the browser started the same transfer twice; upload it again")
        if size > self._limit_bytes:
            raise _Stop(too_large_message(name, size, self._limit_bytes, self.too_large_hint))
        self._drop_stale()
        if len(self._transfers) >= MAX_OPEN:
            raise _Stop(f"{name!r}: {MAX_OPEN} uploads are already running; wait for them to finish")
        try:
            path = Path(self._destination(name, size))
            # exclusive create: never overwrite; stays open across messages until _complete/_discard
            handle = open(path, "xb")
        except ValueError as exc:
            raise _Stop(str(exc)) from exc
        except OSError as exc:
            raise _Stop(f"cannot store {name!r}: {exc.strerror or type(exc).__name__}") from exc
        self._transfers[uid] = _Transfer(name, size, path, handle)
        return size == 0

    def _append(self, uid: str, offset: Any, buffers: list) -> bool:
        """Write one piece; True when the announced size is complete."""
        tr = self._transfers.get(uid)
        if tr is None:
            raise _Stop("a piece of an upload the kernel does not know arrived (it was stopped "
                        "or never started); upload the file again")
        if offset != tr.received or not _is_count(offset):
            raise _Stop(f"{tr.name!r}: a piece for byte {str(offset)[:20]} arrived while byte "
                        f"{tr.received} was expected; the upload was stopped, upload the file again")
        if len(buffers) != 1:
            raise _Stop(f"{tr.name!r}: a piece arrived with {len(buffers)} buffers instead of one; "
                        "the upload was stopped, upload the file again")
        try:
            piece = memoryview(buffers[0]).cast("B")
        except (TypeError, ValueError) as exc:
            raise _Stop(f"{tr.name!r}: a piece arrived that is not binary data; the upload was "
                        "stopped, upload the file again") from exc
        if piece.nbytes == 0:
            raise _Stop(f"{tr.name!r}: an empty piece arrived before the end of the file; the upload "
                        "was stopped, upload the file again")
        total = tr.received + piece.nbytes
        if total > self._limit_bytes:
            raise _Stop(f"{tr.name!r} grew past the {self._limit_bytes / MIB:g} MB upload limit while "
                        f"uploading ({total / MIB:.1f} MB sent); the upload was stopped and the "
                        "partial file deleted")
        if total > tr.size:
            raise _Stop(f"{tr.name!r}: the browser sent more than the {tr.size} bytes it announced; "
                        "the upload was stopped and the partial file deleted")
        try:
            tr.handle.write(piece)
        except OSError as exc:
            raise _Stop(f"cannot store {tr.name!r}: {exc.strerror or type(exc).__name__}; the partial "
                        "file was deleted") from exc
        tr.received, tr.touched = total, time.monotonic()
        return total == tr.size

    def _complete(self, uid: str, reply: bool) -> None:
        tr = self._transfers.pop(uid)
        try:
            tr.handle.close()  # flushes: a full disk shows up here
        except OSError as exc:
            tr.path.unlink(missing_ok=True)
            message = f"cannot store {tr.name!r}: {exc.strerror or type(exc).__name__}"
            if reply:
                self._reply({"type": "error", "id": uid, "message": message})
            self._problem(message)
            return
        if reply:
            self._reply({"type": "done", "id": uid, "name": tr.path.name, "size": tr.size})
        for callback in self._file_callbacks:
            try:
                callback(tr.path)
            except Exception as exc:  # a listener's failure is shown, not raised
                self._problem(f"{tr.name!r} was uploaded, but showing it failed: "
                              f"{type(exc).__name__}: {exc}")

    def _discard(self, uid: str) -> None:
        """Forget a transfer and delete its partial file (no-op for unknown ids)."""
        tr = self._transfers.pop(uid, None)
        if tr is None:
            return
        try:
            tr.handle.close()
        except OSError:
            pass
        tr.path.unlink(missing_ok=True)

    def _drop_stale(self) -> None:
        now = time.monotonic()
        for uid in [u for u, tr in self._transfers.items() if now - tr.touched > STALE_S]:
            self._discard(uid)

    # -- Python-side files (FileUpload-style value) ----------------------------------------
    def _on_value(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        try:
            self._new_batch(None)
            for item in files:
                uid = f"local-{next(self._local_ids)}"
                try:
                    data = memoryview(item["content"]).cast("B")
                    done = self._begin(uid, item["name"], data.nbytes)
                    if not done:
                        done = self._append(uid, 0, [data])
                except _Stop as stop:
                    self._discard(uid)
                    self._problem(str(stop))
                    continue
                except (KeyError, TypeError, ValueError) as exc:
                    self._discard(uid)
                    self._problem(f"ignored a file given without name and binary content ({exc})")
                    continue
                self._complete(uid, reply=False)
        finally:
            self.set_trait("value", ())  # the bytes are stored; keeping them doubles memory

    # -- helpers ------------------------------------------------------------------------
    def _new_batch(self, batch: Any) -> None:
        if batch is None or batch != self._batch:
            self._batch = batch
            self.problems = []

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        for callback in self._problem_callbacks:
            try:
                callback(message)
            except Exception:
                self.log.error("upload problem callback failed", exc_info=True)

    def _reply(self, content: dict) -> None:
        try:
            self.send(content)
        except Exception:  # a closed comm: the browser is gone, nothing to tell
            self.log.debug("upload reply not sent", exc_info=True)
