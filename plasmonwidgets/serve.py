"""Run Voila with TCP_NODELAY on every connection: ``python -m plasmonwidgets.serve NOTEBOOK ...``.

Widget updates are small websocket frames that often follow another small frame (the
kernel's "busy" status). With Nagle's algorithm on, such a frame waits for the peer's
delayed ACK (~40 ms on Linux) before it is sent, which puts a floor under the latency of
every slider move. Jupyter Server does not switch Nagle off for kernel websockets, so the
server's accepted streams get ``set_nodelay(True)`` here before Voila starts. All other
arguments are Voila's own.
"""

from __future__ import annotations

import sys

from tornado.httpserver import HTTPServer

_handle_stream = HTTPServer.handle_stream


def _handle_stream_nodelay(self, stream, address):
    stream.set_nodelay(True)
    return _handle_stream(self, stream, address)


def main() -> None:
    HTTPServer.handle_stream = _handle_stream_nodelay
    from voila.app import main as voila_main

    sys.exit(voila_main())


if __name__ == "__main__":
    main()
