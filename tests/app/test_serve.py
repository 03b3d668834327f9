"""The dashboard's Voila setup: its own page template (no CDN links) and the theme option."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from plasmonwidgets.app import serve
from plasmonwidgets.app.cli import demo_command


def test_template_is_found_and_based_on_voilas_lab_template():
    from voila.paths import collect_template_paths

    serve._add_template_root()
    serve._add_template_root()  # idempotent
    paths = collect_template_paths(["voila", "nbconvert"], serve.TEMPLATE, prune=True)
    ours = serve.TEMPLATE_ROOT / "voila" / "templates" / serve.TEMPLATE
    assert paths[0] == str(ours)
    assert any(p.endswith("voila/templates/lab") for p in paths)
    text = (ours / "index.html.j2").read_text()
    # the two links the template removes are Voila's, spelled exactly as there
    voila_lab = next(p for p in paths if p.endswith("voila/templates/lab"))
    lab = open(f"{voila_lab}/index.html.j2").read()
    for sheet in ("all.min.css", "v4-shims.min.css"):
        href = f"https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@^5/css/{sheet}"
        assert f'<link rel="stylesheet" href="{href}" type="text/css" />' in lab
    assert '"https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@^5/css/"' in text
    assert "all.min.css" in text and "v4-shims.min.css" in text


def test_offline_config_loads_only_the_dashboards_frontend_extensions():
    config = serve.offline_config(Config())
    assert config.VoilaConfiguration.template == "plasmonwidgets"
    allowed = set(config.VoilaConfiguration.extension_allowlist)
    assert {"@jupyter-widgets/jupyterlab-manager", "anywidget", "bqplot"} <= allowed
    assert not any(name.startswith("@jupyter-notebook/") for name in allowed)


def test_demo_theme_option(tmp_path):
    cmd, _env = demo_command("127.0.0.1", 8866, tmp_path, theme="dark")
    assert "--theme=dark" in cmd
    assert "--theme=light" in demo_command("127.0.0.1", 8866, tmp_path)[0]
    with pytest.raises(ValueError, match="light or dark"):
        demo_command("127.0.0.1", 8866, tmp_path, theme="blue")
