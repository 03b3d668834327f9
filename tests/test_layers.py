"""The layering rule, read from the source: arrows only point down.

core (everything outside ``widgets/`` and ``app/``) -> widgets -> app. The core runs
headless, so it never imports the widgets, the app or a widget library; ``nn`` holds the
networks and never imports ``models``; no widget module imports the app when it is
imported (``widgets.Dashboard`` is re-exported from the app on first access only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "plasmonwidgets"
WIDGET_LIBRARIES = {"ipywidgets", "bqplot", "anywidget"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Absolute names of the modules ``path`` imports (``from . import x`` resolved).

    ``top_level_only``: leave out imports inside functions and classes (run on use, not
    when the module is imported)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _modules(*, under: str | None = None, outside: tuple[str, ...] = ()) -> list[Path]:
    root = PACKAGE / under if under else PACKAGE
    paths = sorted(root.rglob("*.py"))
    return [p for p in paths if not any(p.is_relative_to(PACKAGE / o) for o in outside)]


def _hits(imports: set[str], prefixes: set[str]) -> list[str]:
    return sorted(i for i in imports if any(i == p or i.startswith(p + ".") for p in prefixes))


CORE = _modules(outside=("widgets", "app"))


def test_the_layers_are_where_the_rule_expects_them():
    names = {_module_name(p) for p in _modules()}
    assert {"plasmonwidgets.io", "plasmonwidgets.nn", "plasmonwidgets.widgets",
            "plasmonwidgets.app", "plasmonwidgets.app.dashboard"} <= names
    assert len(CORE) > 40, "the core modules were not found"


@pytest.mark.parametrize("path", CORE, ids=_module_name)
def test_core_never_imports_widgets_or_app(path):
    bad = _hits(_imports(path), {"plasmonwidgets.widgets", "plasmonwidgets.app"} | WIDGET_LIBRARIES)
    assert not bad, f"{_module_name(path)} (core) imports {bad}; the core must run headless"


@pytest.mark.parametrize("path", _modules(under="nn"), ids=_module_name)
def test_nn_does_not_import_models(path):
    bad = _hits(_imports(path), {"plasmonwidgets.models"})
    assert not bad, f"{_module_name(path)} imports {bad}; networks sit below the models"


@pytest.mark.parametrize("path", _modules(under="widgets"), ids=_module_name)
def test_widgets_do_not_import_the_app_when_imported(path):
    bad = _hits(_imports(path, top_level_only=True), {"plasmonwidgets.app"})
    assert not bad, f"{_module_name(path)} imports {bad} at import time; the app sits above"


def test_relative_imports_are_resolved():
    imports = _imports(PACKAGE / "io" / "reader.py")
    assert "plasmonwidgets.io.backend" in imports and "plasmonwidgets._atomic" in imports
    assert "plasmonwidgets.app.dashboard" in _imports(PACKAGE / "widgets" / "__init__.py")
    assert "plasmonwidgets.app.dashboard" not in _imports(PACKAGE / "widgets" / "__init__.py",
                                                          top_level_only=True)
