"""The model lifecycle in the dashboard, as a user clicks through it in Chromium.

Train a fresh im2spec 2-latent model for two epochs in the Train tab: the pre-trained
model stays in use until "Use this model" is pressed; then the header, the Train tab's
note, the Data tab's summary and the Errors tab's table all name the model trained
here; "Revert to pre-trained" brings the packaged model back and every caption says
so again. Console errors (the end of a run redraws the loss plot) fail the test too.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

TAB_TIMEOUT_MS = 90_000
TRAIN_TIMEOUT_MS = 240_000
EPOCHS = 2
LABEL = "im2spec 2 latent"
TRAINED = f"trained here, {EPOCHS} epochs"

HEADER = ".pw-dashboard-header"
TRAIN_NOTE = ".pw-train-note"
SUMMARY = ".pw-summary"
ERROR_MODELS = ".pw-error-models"


def _open_tab(page, name: str) -> None:
    page.locator(".pw-dashboard-tabs .lm-TabBar-tab", has_text=name).first.click()


def _text(page, selector: str) -> str:
    return " ".join(page.locator(selector).first.inner_text().split())


def _wait_text(page, selector: str, pattern: str, timeout_ms: int = 30_000) -> str:
    """Wait until the first ``selector`` element's text matches the regex ``pattern``."""
    page.wait_for_function(
        """([sel, pattern]) => { const el = document.querySelector(sel);
               return el !== null && new RegExp(pattern).test(el.textContent.replace(/\\s+/g, ' ')); }""",
        arg=[selector, pattern], timeout=timeout_ms,
    )  # fmt: skip
    return _text(page, selector)


def _summary_row(page, label: str) -> str:
    row = page.locator(f"{SUMMARY} tr", has_text=label).first
    row.wait_for(timeout=TAB_TIMEOUT_MS)
    return " ".join(row.inner_text().split())


@pytest.fixture
def lifecycle_page(browser, voila_server):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.console_errors = errors
    page.goto(voila_server.url, wait_until="domcontentloaded")
    page.locator(".pw-dashboard-viewer canvas.pw-haadf-canvas").wait_for(
        state="visible", timeout=TAB_TIMEOUT_MS)
    try:
        yield page
    finally:
        page.close()


def test_train_use_and_revert_a_model(lifecycle_page, artifacts):
    page = lifecycle_page
    _wait_text(page, HEADER, "all pre-trained")  # the models load after the first image
    assert "pre-trained" in _summary_row(page, LABEL)

    # a short fresh run, trained beside the model in use
    _open_tab(page, "Train")
    panel = page.locator(".pw-training-progress").first
    panel.wait_for(state="visible", timeout=TAB_TIMEOUT_MS)
    epochs = page.locator(".pw-dashboard-tabs .widget-text", has_text="epochs").locator("input").first
    epochs.fill(str(EPOCHS))
    epochs.press("Enter")
    epochs.blur()
    page.wait_for_timeout(1_000)  # the new epoch count reaches the kernel
    use = page.locator("button", has_text="Use this model").first
    revert = page.locator("button", has_text="Revert to pre-trained").first
    assert use.is_disabled() and revert.is_disabled()
    panel.locator("button", has_text="Start").click()
    _wait_text(page, ".pw-training-progress", f"finished after {EPOCHS}/{EPOCHS} epochs",
               timeout_ms=TRAIN_TIMEOUT_MS)
    note = _wait_text(page, TRAIN_NOTE, re.escape(f"Last run here ({TRAINED}) is not in use"))
    assert f"In use: {LABEL}, pre-trained." in note, note
    assert "all pre-trained" in _text(page, HEADER), "a finished run replaced the model in use"
    page.screenshot(path=str(artifacts / "lifecycle_trained.png"), full_page=True)

    # Use this model: every caption names the model trained here
    page.wait_for_function("el => !el.disabled", arg=use.element_handle())
    use.click()
    note = _wait_text(page, TRAIN_NOTE, re.escape(f"In use: {LABEL}, {TRAINED}."))
    assert "not in use" not in note, note
    header = _wait_text(page, HEADER, re.escape(f"{LABEL} {TRAINED}"))
    assert "3 pre-trained" in header, header
    page.wait_for_function("el => el.disabled", arg=use.element_handle())
    page.wait_for_function("el => !el.disabled", arg=revert.element_handle())
    _open_tab(page, "Data")
    _wait_text(page, SUMMARY, re.escape(LABEL) + r"\s*" + re.escape(TRAINED))
    assert TRAINED in _summary_row(page, LABEL)
    _open_tab(page, "Errors")  # rebuilt for the new model: wait for its caption
    errors_table = _wait_text(page, ERROR_MODELS, re.escape(f"{LABEL}: {TRAINED}"),
                              timeout_ms=TAB_TIMEOUT_MS)
    assert "pre-trained" in errors_table, "the 10-latent model in use is still the packaged one"
    page.screenshot(path=str(artifacts / "lifecycle_in_use.png"), full_page=True)

    # Revert to pre-trained: all captions say pre-trained again; the run is kept
    _open_tab(page, "Train")
    revert.click()
    note = _wait_text(page, TRAIN_NOTE, re.escape(f"In use: {LABEL}, pre-trained."))
    assert f"Last run here ({TRAINED}) is not in use" in note, note
    header = _wait_text(page, HEADER, "all pre-trained")
    assert "trained here" not in header, header
    page.wait_for_function("el => el.disabled", arg=revert.element_handle())
    page.wait_for_function("el => !el.disabled", arg=use.element_handle())
    _open_tab(page, "Data")
    _wait_text(page, SUMMARY, re.escape(LABEL) + r"\s*pre-trained")
    row = _summary_row(page, LABEL)
    assert "pre-trained" in row and "trained here" not in row, row
    _open_tab(page, "Errors")
    errors_table = _wait_text(page, ERROR_MODELS, re.escape(f"{LABEL}: pre-trained"),
                              timeout_ms=TAB_TIMEOUT_MS)
    assert "trained here" not in errors_table, errors_table
    page.screenshot(path=str(artifacts / "lifecycle_reverted.png"), full_page=True)
    assert not page.console_errors, (
        f"{len(page.console_errors)} console error(s); the first ones: {page.console_errors[:8]}")
