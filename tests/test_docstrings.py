"""Every public function and class in the package has a numpydoc ``Examples`` section.

"Public" means a top-level name without a leading underscore in a module whose name does not
start with one (package ``__init__.py`` files count); where a module defines ``__all__``, only
the names in it are public.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "plasmonwidgets"

# Vendored front-end assets and notebooks, not Python API.
SKIP_DIRS = ["app/share"]

# Paths relative to plasmonwidgets/ that are being edited right now: their Examples sections
# will be added once those edits land, and this list emptied.
PENDING: list[str] = []

EXAMPLES = re.compile(r"^\s*Examples\s*\n\s*-{8,}\s*$", re.MULTILINE)


def _skipped(rel: str) -> bool:
    # Entries ending in "/" and SKIP_DIRS name folders; the others name single files.
    folders = [d.rstrip("/") + "/" for d in SKIP_DIRS] + [e for e in PENDING if e.endswith("/")]
    return rel in PENDING or any(rel.startswith(folder) for folder in folders)


def _modules() -> list[Path]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if _skipped(rel):
            continue
        if any(part.startswith("_") for part in rel.split("/")[:-1]):
            continue
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        found.append(path)
    return found


def _declared_all(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            try:
                return set(ast.literal_eval(node.value))
            except ValueError:
                # Built at import time (e.g. sorted(...)): every public name counts.
                return None
    return None


def public_definitions(path: Path) -> list[tuple[str, str | None]]:
    """Return ``(name, docstring)`` for the public top-level functions and classes of one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    exported = _declared_all(tree)
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [
        (node.name, ast.get_docstring(node))
        for node in tree.body
        if isinstance(node, kinds)
        and not node.name.startswith("_")
        and (exported is None or node.name in exported)
    ]


def test_modules_are_found():
    assert len(_modules()) > 50


def test_pending_entries_exist():
    # A renamed or deleted file must be dropped from PENDING rather than silently ignored.
    missing = [entry for entry in PENDING if not (PACKAGE / entry).exists()]
    assert missing == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_public_api_has_examples(path):
    missing = [name for name, doc in public_definitions(path) if not doc or not EXAMPLES.search(doc)]
    assert missing == [], f"{path.relative_to(PACKAGE)}: no numpydoc Examples section in {missing}"
