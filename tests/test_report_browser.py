"""The web app's report in headless Chromium: load the real chest film (pydicom-data RG1, strided 4x),
ask, press "Write report": the DRAFT report shows with its evidence ids and figure, the downloads hold
the PDF, SEG and SR; no request leaves 127.0.0.1.  Saves docs/screenshots/report.png.
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.conftest import REPO
from tests.test_export import QUESTION, _small_film
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, _shrink_png

SCREENSHOT = REPO / "docs" / "screenshots" / "report.png"

pytestmark = pytest.mark.slow


def test_report_button_shows_the_draft_and_offers_the_files(tmp_path, shared_pool, one_torch_thread):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from agent.runner import Assistant
    from tools.settings import OslerSettings
    from ui.app import build_app, serve

    film = _small_film(tmp_path / "chest_film.dcm")
    app = build_app(Assistant(OslerSettings(data_dir=tmp_path / "osler"), pool=shared_pool))
    _, url, _ = serve(app, OslerSettings(data_dir=tmp_path / "osler"), port=_free_port(), prevent_thread_lock=True,
                      quiet=True)
    requests: list[str] = []
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.on("request", lambda req: requests.append(req.url))
            page.goto(url, wait_until="load")
            page.wait_for_selector("#question textarea", timeout=60_000)
            page.locator("#current-file input[type=file]").set_input_files(str(film))
            page.locator("#chat").get_by_text("Loaded the", exact=False).wait_for(timeout=60_000)
            page.locator("#question textarea").fill(QUESTION)
            page.locator("#ask").click()
            page.locator("#chat").get_by_text("Answer:", exact=False).wait_for(timeout=180_000)
            page.locator("#report-btn").click()
            report = page.locator("#report")
            report.get_by_text("Models and versions", exact=False).wait_for(timeout=120_000)
            text = report.inner_text()
            assert "DRAFT for review, not a diagnosis" in text
            assert "[E" in text and "lung_segmenter" in text and "segmentation.dcm" in text
            assert report.locator("img").count() >= 1  # the figure
            downloads = page.locator("#downloads").inner_text().replace("\n", "")  # name and suffix on two lines
            for name in ("report.pdf", "segmentation.dcm", "measurements-sr.dcm"):
                assert name in downloads, downloads
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.locator("#report-panel").screenshot(path=str(SCREENSHOT))
            browser.close()
    finally:
        app.close()
    _shrink_png(SCREENSHOT)
    hosts = {urlparse(u).hostname for u in requests if u.startswith("http")}
    assert hosts <= {"127.0.0.1", "localhost"}, hosts
