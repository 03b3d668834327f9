"""A Voila server run as a child process, and a headless Chromium to open its pages.

For the end-to-end tests (``tests/e2e``) and the browser benchmarks: :class:`VoilaProcess`
starts ``plasmonwidgets demo`` (or any Voila command line) in its own process group and
stops it with every kernel it started; :data:`CHROMIUM` and :data:`CHROMIUM_ARGS` run a
browser on a server without a GPU or network.

Examples
--------
>>> port = free_port()
>>> server = VoilaProcess(["plasmonwidgets", "demo", "--port", str(port)], port,
...                       Path("voila.log"))                     # doctest: +SKIP
>>> server.wait_ready(); server.stop()                           # doctest: +SKIP
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "VoilaProcess", "free_port"]

#: Debian's chromium (override with PLASMONWIDGETS_CHROMIUM) and the flags that let it run
#: headless on a server without a GPU or network, for the browser tests and benchmarks
CHROMIUM = Path(os.environ.get("PLASMONWIDGETS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now.

    Examples
    --------
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class VoilaProcess:
    """A Voila server run as a child process in its own process group (tests, benchmarks).

    ``cmd`` is the full command line (it must make the server listen on ``port``); output
    goes to ``log_path``. :meth:`stop` ends the server and every kernel it started.

    Examples
    --------
    >>> import pathlib, sys
    >>> port = free_port()
    >>> server = VoilaProcess([sys.executable, "-m", "voila", "dashboard.ipynb", f"--port={port}",
    ...                        "--no-browser"], port, pathlib.Path("voila.log"))  # doctest: +SKIP
    >>> server.stop()                                # doctest: +SKIP
    """

    def __init__(self, cmd: list[str], port: int, log_path: Path, *, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None, host: str = "127.0.0.1"):
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}/"
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")  # closed in stop()
        self._kernel_pids: set[int] = set()
        self.t_launch = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Block until the port accepts connections; returns seconds since launch.

        Only the TCP port is probed: an HTTP GET of the page would start a kernel.
        """
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voila exited with {self.proc.returncode}:\n{self.log_tail()}")
            if _port_open(self.host, self.port):
                return time.perf_counter() - self.t_launch
            time.sleep(0.1)
        raise TimeoutError(f"voila did not listen on {self.port} in {timeout} s:\n{self.log_tail()}")

    def kernel_processes(self) -> list:
        """Live ipykernel processes started by this server (Voila has no kernel list API)."""
        import psutil

        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        out = []
        for child in children:
            try:
                if ("ipykernel_launcher" in " ".join(child.cmdline()) and child.is_running()
                        and child.status() != psutil.STATUS_ZOMBIE):
                    out.append(child)
            except psutil.Error:
                continue
        self._kernel_pids.update(p.pid for p in out)
        return out

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the process group (Voila shuts its kernels down), SIGKILL what is left."""
        try:
            self.kernel_processes()  # remember them: a kernel may sit in its own session
        except Exception:  # psutil missing or the server gone: the group kill still runs
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        for kill in ([lambda: os.killpg(self.proc.pid, signal.SIGKILL)]
                     + [lambda pid=pid: os.kill(pid, signal.SIGKILL) for pid in self._kernel_pids]):
            try:
                kill()
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()
