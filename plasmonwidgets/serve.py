"""Former place of :mod:`plasmonwidgets.app.voila_process`; benchmarks/bench_viewer_render.py
still imports the Voila harness from here. Import from ``plasmonwidgets.app.voila_process``."""

from .app.voila_process import CHROMIUM, CHROMIUM_ARGS, VoilaProcess, free_port

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "VoilaProcess", "free_port"]
