"""Run Voila for the dashboard: ``python -m plasmonwidgets.app.serve NOTEBOOK ...``.

Three things are added to a plain ``voila`` (all other arguments are Voila's own):

- **TCP_NODELAY on every connection.** Widget updates are small websocket frames that
  often follow another small frame (the kernel's "busy" status). With Nagle's algorithm
  on, such a frame waits for the peer's delayed ACK (~40 ms on Linux) before it is sent,
  which puts a floor under the latency of every slider move. Jupyter Server does not
  switch Nagle off for kernel websockets, so accepted streams get ``set_nodelay(True)``.
- **No orphaned kernels** (:class:`DashboardKernelManager`). Voila starts one kernel per
  page view. A kernel whose page is gone (tab closed, browser crashed, network lost) is
  shut down once no page has been connected to it for ``orphan_timeout`` seconds, *busy
  or not*: Jupyter's idle culling alone never culls a kernel whose training thread keeps
  sending progress messages. A page that is open is never culled. Pages also get the
  ``_xsrf`` cookie that Voila's shutdown beacon (sent when a tab closes) needs, so a
  normally closed tab frees its kernel at once.
- **A cap on live kernels** (``DashboardKernelManager.max_kernels``). At the cap, a new
  page view gets a short "busy, try again" page (HTTP 503) instead of a kernel.
- **Nothing from the internet** (:func:`offline_config`). The page is rendered with the
  ``plasmonwidgets`` Voila template (``app/share/voila/templates``): Voila's lab
  template without its Font Awesome CDN links (Voila's own bundle already carries Font
  Awesome), so a microscope PC without network shows every icon. Only the front-end
  extensions the dashboard uses are loaded (:data:`FRONTEND_EXTENSIONS`): other
  JupyterLab extensions installed beside it (e.g. the ``notebook`` package's) are built
  for another JupyterLab version and fail in Voila's page with a module-federation error.

:class:`~plasmonwidgets.app.voila_process.VoilaProcess` runs such a server as a child
process (end-to-end tests, benchmarks).
"""

from __future__ import annotations

import html
import sys
import time
from pathlib import Path
from typing import Any

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.httpserver import HTTPServer
from tornado.web import Finish
from traitlets import Float, Integer

_handle_stream = HTTPServer.handle_stream

#: the Voila template the dashboard page is rendered with, and the folder holding it
#: (laid out as a Jupyter data directory: ``voila/templates/<name>``)
TEMPLATE = "plasmonwidgets"
TEMPLATE_ROOT = Path(__file__).resolve().parent / "share"

#: the front-end (JupyterLab) extensions the dashboard's page loads; Voila loads every
#: installed one otherwise
FRONTEND_EXTENSIONS = (
    "@jupyter-widgets/jupyterlab-manager",
    "@voila-dashboards/widgets-manager8",
    "anywidget",
    "bqplot",
    "bqscales",
)


def _handle_stream_nodelay(self, stream, address):
    stream.set_nodelay(True)
    return _handle_stream(self, stream, address)


class KernelCapReached(RuntimeError):
    """A page view would start a kernel beyond ``DashboardKernelManager.max_kernels``.

    Examples
    --------
    >>> issubclass(KernelCapReached, RuntimeError)
    True
    """


class DashboardKernelManager(AsyncMappingKernelManager):
    """Voila's kernel manager with a cap on live kernels and shutdown of orphaned ones.

    Configure with ``--DashboardKernelManager.max_kernels=N`` (0: no cap) and
    ``--DashboardKernelManager.orphan_timeout=S`` (seconds; 0: off). Orphans are looked
    for by Jupyter's culling loop, so ``--MappingKernelManager.cull_idle_timeout`` must be
    > 0 and ``cull_interval`` sets how often (``plasmonwidgets demo`` sets both).

    Examples
    --------
    Selected on the Voila command line (see :func:`main`), e.g. at most 8 live kernels:

    >>> import subprocess
    >>> subprocess.run(["python", "-m", "plasmonwidgets.app.serve", "dashboard.ipynb",
    ...                 "--DashboardKernelManager.max_kernels=8"])  # doctest: +SKIP
    """

    max_kernels = Integer(0, min=0, config=True, help="Most kernels alive at once; 0: no cap.")
    orphan_timeout = Float(0.0, min=0.0, config=True, help=(
        "Shut down a kernel when no page has been connected to it for this many seconds, "
        "even while it computes (a closed tab's training); 0: off."))

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._starting = 0  # kernels being started: counted against the cap
        self._unconnected_since: dict[str, float] = {}
        self._connected_once: set[str] = set()

    @property
    def at_capacity(self) -> bool:
        """True when starting one more kernel would exceed :attr:`max_kernels`."""
        live = len(self.list_kernel_ids()) + self._starting
        return bool(self.max_kernels) and live >= self.max_kernels

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        # the hard bound; prelaunch() answers page views at the cap more politely first
        if self.at_capacity:
            raise KernelCapReached(f"{self.max_kernels} dashboard kernels are running, the most "
                                   "this server allows")
        self._starting += 1  # check and count happen without an await between them
        try:
            kernel_id = await super().start_kernel(*args, **kwargs)
        finally:
            self._starting -= 1
        if not self._kernel_connections.get(kernel_id, 0):  # its page has not connected yet
            self._unconnected_since.setdefault(kernel_id, time.monotonic())
        return kernel_id

    def notify_connect(self, kernel_id: str) -> None:
        super().notify_connect(kernel_id)
        self._connected_once.add(kernel_id)
        self._unconnected_since.pop(kernel_id, None)

    def notify_disconnect(self, kernel_id: str) -> None:
        super().notify_disconnect(kernel_id)
        if kernel_id in self and not self._kernel_connections.get(kernel_id, 0):
            self._unconnected_since[kernel_id] = time.monotonic()

    def _seconds_alone(self, kernel_id: str, since: float) -> float:
        """Seconds without a page. A kernel whose page never connected counts from its last
        activity: Voila executes the whole notebook before the page can connect, which on
        a loaded machine may itself take longer than ``orphan_timeout``."""
        alone = time.monotonic() - since
        if kernel_id not in self._connected_once:
            last = getattr(self.get_kernel(kernel_id), "last_activity", None)
            if last is not None:
                alone = min(alone, (utcnow() - last).total_seconds())
        return alone

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        since = self._unconnected_since.get(kernel_id)
        if self.orphan_timeout > 0 and since is not None and kernel_id in self:
            alone = self._seconds_alone(kernel_id, since)
            if alone > self.orphan_timeout:
                self.log.warning("Shutting down kernel %s: no page connected for %d s (its tab "
                                 "was closed); work it was doing stops", kernel_id, alone)
                self._unconnected_since.pop(kernel_id, None)
                await self.shutdown_kernel(kernel_id)
                return
        await super().cull_kernel_if_idle(kernel_id)

    def remove_kernel(self, kernel_id: str) -> Any:
        self._unconnected_since.pop(kernel_id, None)
        self._connected_once.discard(kernel_id)
        return super().remove_kernel(kernel_id)


def capacity_page(max_kernels: int) -> str:
    """The HTML shown instead of the dashboard when ``max_kernels`` kernels are running.

    Examples
    --------
    >>> "8 dashboard sessions are open" in capacity_page(8)
    True
    """
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Dashboard busy</title></head>"
        "<body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
        "<h1>The dashboard is busy</h1>"
        f"<p id='pw-capacity'>{html.escape(str(max_kernels))} dashboard sessions are open, the "
        "most this server allows. Close a dashboard tab you no longer use, or try again in a "
        "minute: sessions of closed tabs end on their own.</p></body></html>"
    )


def prelaunch(handler: Any, notebook: Any = None, cwd: Any = None) -> None:
    """Voila's prelaunch hook: the busy page at the kernel cap; the ``_xsrf`` cookie.

    Voila's page sends a shutdown beacon when its tab closes; the server refuses it
    without the ``_xsrf`` cookie, which plain Voila never sets. Reading
    ``handler.xsrf_token`` sets it on this response.

    Examples
    --------
    Voila calls it before starting a kernel for a page view (see :func:`main`):

    >>> prelaunch(handler)                           # inside Voila's request handler  # doctest: +SKIP
    """
    manager = handler.kernel_manager
    if getattr(manager, "at_capacity", False):
        handler.set_status(503)
        handler.set_header("Retry-After", "60")
        handler.set_header("Content-Type", "text/html; charset=utf-8")
        raise Finish(capacity_page(manager.max_kernels))
    handler.xsrf_token  # noqa: B018 - sets the cookie as a side effect


def _add_template_root() -> None:
    """Let Voila find :data:`TEMPLATE` in :data:`TEMPLATE_ROOT` (before the usual Jupyter
    data directories). Setting ``JUPYTER_PATH`` instead would also move Voila's data
    directory, where it looks up the JupyterLab themes."""
    import voila.paths

    default_root_dirs = voila.paths._default_root_dirs
    if getattr(default_root_dirs, "_plasmonwidgets", False):
        return

    def root_dirs() -> list[str]:
        return [str(TEMPLATE_ROOT), *default_root_dirs()]

    root_dirs._plasmonwidgets = True  # type: ignore[attr-defined]
    voila.paths._default_root_dirs = root_dirs


def offline_config(config: Any) -> Any:
    """Set the template and front-end extensions that keep the page off the internet.

    Returns ``config`` (a traitlets ``Config``); command-line options still override it.

    Examples
    --------
    >>> from traitlets.config import Config
    >>> config = offline_config(Config())
    >>> config.VoilaConfiguration.template == TEMPLATE
    True
    """
    config.VoilaConfiguration.template = TEMPLATE
    config.VoilaConfiguration.extension_allowlist = list(FRONTEND_EXTENSIONS)
    return config


def main() -> None:
    """Run Voila with the offline template, the kernel cap and the prelaunch hook.

    Examples
    --------
    Command-line arguments are Voila's (``sys.argv``); this is what ``plasmonwidgets demo`` runs:

    >>> import sys
    >>> sys.argv = ["serve", "dashboard.ipynb", "--port=8866", "--no-browser"]  # doctest: +SKIP
    >>> main()                                       # serves until interrupted  # doctest: +SKIP
    """
    from traitlets.config import Config
    from voila.app import Voila

    HTTPServer.handle_stream = _handle_stream_nodelay
    _add_template_root()
    config = offline_config(Config())
    config.VoilaConfiguration.multi_kernel_manager_class = DashboardKernelManager
    config.VoilaConfiguration.prelaunch_hook = prelaunch
    sys.exit(Voila.launch_instance(config=config))


if __name__ == "__main__":
    main()
