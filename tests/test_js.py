"""The front-end modules' own tests: tests/js/*.test.mjs, run with node's built-in test runner.

They import the real ES modules from plasmonwidgets/widgets/static/ and drive them with the
small fakes in tests/js/fakes.mjs (no npm packages). This entry point lets ``make test`` run
them; by hand: ``node --test tests/js/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

NODE = shutil.which("node")
JS_TESTS = Path(__file__).parent / "js"


# static/*.js are ES modules in a folder without a package.json "type": node tells them
# from CommonJS by their syntax only from 20.19 on
NEEDED = (20, 19)


def _node_version() -> tuple[int, ...]:
    out = subprocess.run([NODE, "--version"], capture_output=True, text=True, timeout=30).stdout
    return tuple(int(part) for part in out.strip().lstrip("v").split(".")[:2])


@pytest.mark.skipif(NODE is None, reason="node is not installed: the JavaScript tests in tests/js/ need "
                                         "node >= 20.19 on PATH (no npm packages)")
def test_javascript_modules():
    if _node_version() < NEEDED:
        pytest.skip(f"node {'.'.join(map(str, _node_version()))} is too old for tests/js/: it needs >= 20.19")
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert files, f"no *.test.mjs files in {JS_TESTS}"
    env = {k: v for k, v in os.environ.items() if k != "PW_DECODER_FIXTURES"}  # parity runs elsewhere
    out = subprocess.run([NODE, "--test", "--test-reporter=tap", *files], capture_output=True,
                         text=True, timeout=300, env=env)
    report = out.stdout + out.stderr
    if out.returncode != 0:
        pytest.fail(f"node --test failed (exit {out.returncode}):\n{report}", pytrace=False)
    passed = re.search(r"^# pass (\d+)$", out.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, f"node ran no JavaScript test:\n{report}"
