"""The application layer: the dashboard, the command line and the Voila server.

- :mod:`~plasmonwidgets.app.dashboard`: :class:`Dashboard`, the paper's workflow in one
  widget (state, error reporting, one module per tab);
- :mod:`~plasmonwidgets.app.cli`: ``plasmonwidgets demo | simulate | train``;
- :mod:`~plasmonwidgets.app.serve`: Voila with a kernel cap and the culling of kernels
  whose page went away;
- :mod:`~plasmonwidgets.app.voila_process`: that server as a child process, and headless
  Chromium, for the end-to-end tests and benchmarks.

The app imports the core and the widgets; nothing below it imports the app.

Examples
--------
>>> from plasmonwidgets.app.dashboard import Dashboard
>>> Dashboard()                                    # doctest: +SKIP
"""
