"""A wheel built from the repository is complete: installed on its own, its demo serves.

The wheel is built with the project's own backend (hatchling, in the test extra) and
installed with ``--no-deps`` into a fresh virtual environment that sees this
environment's packages (torch, voila, ...) through a ``.pth`` line but not the editable
install, so every import and every file lookup below goes to the wheel.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "plasmonwidgets"


def _run(cmd: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", out, ROOT], cwd=out)
    (path,) = out.glob("plasmonwidgets-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel_env(wheel, tmp_path_factory) -> Path:
    """A venv holding only the wheel; the test environment's other packages via a .pth."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv)
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        cwd=venv).stdout.strip())
    # a plain path line: the directory is added, its .pth files (the editable install's
    # pointer to the repository among them) are not processed
    (purelib / "test_environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel],
         cwd=venv)
    return venv


def test_wheel_holds_every_package_file_and_the_dashboard(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        packaged = zf.read("plasmonwidgets/app/dashboard.ipynb")
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [line.split(":", 1)[1].strip() for line in zf.read(meta).decode().splitlines()
                    if line.startswith("Requires-Dist:") and "extra ==" not in line]
    # `plasmonwidgets demo` serves with Voila and needs a Python kernel: Voila brings none
    assert {"voila", "ipykernel"} <= {re.split(r"[<>=!~\[; ]", r)[0].lower() for r in requires}
    assert packaged == (ROOT / "notebooks" / "dashboard.ipynb").read_bytes()
    expected = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    missing = sorted(expected - names)
    assert not missing, f"files of the package missing from the wheel: {missing}"
    # what the package needs at run time beyond its modules
    for needed in ("plasmonwidgets/pretrained/im2spec_10.pt", "plasmonwidgets/widgets/static/haadf_viewer.js",
                   "plasmonwidgets/widgets/static/haadf_viewer.css", "plasmonwidgets/app/dashboard/theme.css",
                   "plasmonwidgets/app/share/voila/templates/plasmonwidgets/index.html.j2",
                   "plasmonwidgets/app/share/voila/templates/plasmonwidgets/conf.json"):
        assert needed in names


def test_installed_wheel_imports_finds_its_files(wheel_env, tmp_path):
    check = (
        "import plasmonwidgets, plasmonwidgets.app.cli as cli\n"
        "from plasmonwidgets import pretrained\n"
        "from plasmonwidgets.widgets import haadf_viewer\n"
        "print(plasmonwidgets.__file__)\n"
        "print(cli.dashboard_notebook())\n"
        "print(pretrained.path('im2spec', 10))\n"
        "print(haadf_viewer._STATIC / 'haadf_viewer.js')\n"
        "print(len(pretrained.available()), pretrained.load_default('im2spec', 2).n_energy)\n"
    )
    out = _run([wheel_env / "bin" / "python", "-c", check], cwd=tmp_path).stdout.splitlines()
    site = wheel_env.resolve()
    for line in out[:4]:
        path = Path(line).resolve()
        assert path.is_relative_to(site) and path.exists(), f"{line} is not from the wheel"
    assert out[1].endswith("plasmonwidgets/app/dashboard.ipynb")
    assert out[4] == "4 100"


@pytest.mark.slow
def test_installed_demo_serves_the_dashboard(wheel_env, tmp_path, builtin_dataset_cached):
    from plasmonwidgets.app.voila_process import VoilaProcess, free_port

    port = free_port()
    cmd = [str(wheel_env / "bin" / "plasmonwidgets"), "demo", "--port", str(port),
           "--data-dir", str(tmp_path)]
    # Voila's page templates are data files under the test environment's prefix, where a
    # full install of the wheel's dependencies would put them in the venv's own
    env = dict(os.environ, JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"))
    server = VoilaProcess(cmd, port, tmp_path / "voila.log", cwd=tmp_path, env=env)
    try:
        server.wait_ready(timeout=120)
        with urllib.request.urlopen(server.url, timeout=300) as response:
            status, body = response.status, response.read().decode("utf-8", "replace")
        assert status == 200
        # the notebook ran in a kernel and left the dashboard's widget view on the page
        assert "application/vnd.jupyter.widget-view+json" in body, server.log_tail()
        assert '"text/plain": "Dashboard(' in body, server.log_tail()
        kernels = [" ".join(k.cmdline()) for k in server.kernel_processes()]
        assert kernels and all(k.startswith(str(wheel_env / "bin" / "python")) for k in kernels)
        assert "There was an error when executing" not in body, server.log_tail()
        # the page is rendered with the package's own Voila template: no CDN links
        assert "cdn.jsdelivr.net" not in body and "fontawesome-free" not in body
    finally:
        server.stop()
