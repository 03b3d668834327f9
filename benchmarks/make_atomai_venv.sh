#!/usr/bin/env bash
# Builds the separate environment that bench_atomai.py runs AtomAI 0.8.1 in (default .venv-atomai).
# AtomAI imports torchvision backbones at import time that ImSpec never uses; torchvision would pull
# another torch, so a small stand-in package (each function raises if called) lets it import.
set -euo pipefail
VENV=${1:-.venv-atomai}
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.13.0
"$VENV/bin/pip" install -q numpy scipy scikit-learn scikit-image matplotlib networkx progressbar2 pandas \
  opencv-python-headless gpytorch "mendeleev<=0.6.1" six
"$VENV/bin/pip" install -q --no-deps atomai==0.8.1
SITE=$("$VENV/bin/python" -c "import site; print(site.getsitepackages()[0])")
mkdir -p "$SITE/torchvision"
cat > "$SITE/torchvision/__init__.py" <<'PY'
"""Import-only stand-in: AtomAI imports torchvision backbones that ImSpec never uses."""
from . import models, utils  # noqa: F401
__version__ = "0.0-standin"
PY
cat > "$SITE/torchvision/models.py" <<'PY'
def _absent(*args, **kwargs):
    raise RuntimeError("torchvision is a stand-in in this environment; this backbone is unavailable")
mobilenet_v2 = resnet50 = vgg16 = _absent
PY
cat > "$SITE/torchvision/utils.py" <<'PY'
def make_grid(*args, **kwargs):
    raise RuntimeError("torchvision is a stand-in in this environment; make_grid is unavailable")
PY
"$VENV/bin/python" -c "import atomai; from atomai.models import ImSpec; print('atomai', atomai.__version__, 'ready')"
