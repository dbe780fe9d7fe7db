"""The web app in headless Chromium: upload, ask, see the answer, the overlay and the tool trace;
no request leaves 127.0.0.1.  Saves docs/screenshots/chat.png.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); Playwright drives it by path and never
downloads a browser.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import DATA, REPO, SMEAR

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "docs" / "screenshots" / "chat.png"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
QUESTION = "How many white blood cells are in this smear?"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shrink_png(path: Path) -> None:
    """A 256-colour palette PNG: the committed screenshot stays small."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256)
    small.save(path, optimize=True)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, shared_pool):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    if not (DATA / SMEAR).is_file():
        pytest.skip(f"real data not found at {DATA}")
    from agent.runner import Assistant
    from tools.settings import OslerSettings
    from ui.app import build_app, serve

    settings = OslerSettings(data_dir=tmp_path_factory.mktemp("osler_browser"), shared_data=DATA)
    app = build_app(Assistant(settings, pool=shared_pool))
    _, url, _ = serve(app, settings, port=_free_port(), prevent_thread_lock=True, quiet=True)
    yield url
    app.close()


def test_upload_ask_see_overlay_and_trace(app_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.on("request", lambda req: requests.append(req.url))
            page.goto(app_url, wait_until="load")
            page.wait_for_selector("#question textarea", timeout=60_000)

            page.locator("#current-file input[type=file]").set_input_files(str(DATA / SMEAR))
            page.locator("#chat").get_by_text("Loaded the", exact=False).wait_for(timeout=60_000)
            page.locator("#current-view img").wait_for(state="visible", timeout=30_000)

            page.locator("#question textarea").fill(QUESTION)
            t0 = time.perf_counter()
            page.locator("#ask").click()
            page.locator("#chat").get_by_text("Answer:", exact=False).wait_for(timeout=120_000)
            elapsed = time.perf_counter() - t0

            page.wait_for_function("() => (document.querySelector('#trace')?.innerText || '').includes('image_info')",
                                   timeout=30_000)
            trace_text = page.locator("#trace").inner_text()
            chat_text = page.locator("#chat").inner_text()
            assert "count" in trace_text and "failed" not in trace_text, f"no count in the trace: {chat_text[-600:]}"
            overlay = page.locator("#overlay img")
            overlay.wait_for(state="visible", timeout=30_000)
            page.wait_for_function("() => { const i = document.querySelector('#overlay img');"
                                   " return i && i.complete && i.naturalWidth > 0; }", timeout=30_000)
            natural = overlay.evaluate("img => [img.naturalWidth, img.naturalHeight]")

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            _shrink_png(SCREENSHOT)
        finally:
            browser.close()

    print(f"submit-to-answer in the browser: {elapsed:.2f} s; {len(requests)} requests, hosts "
          f"{sorted({urlparse(u).hostname for u in requests if urlparse(u).hostname})}")
    assert natural == [640, 480]  # the overlay is drawn on the 640x480 smear
    assert "image_info" in trace_text and "count" in trace_text and "WBC" in trace_text
    assert QUESTION in chat_text and "Answer:" in chat_text
    assert SCREENSHOT.stat().st_size > 10_000
    outside = [u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
               and urlparse(u).hostname not in ("127.0.0.1",)]
    assert requests and not outside, f"requests left 127.0.0.1: {outside[:5]}"


def test_click_on_the_study_outlines_and_measures_there(app_url):
    """A click on the current study's preview asks for the region under the pointer: segment with a point
    prompt (the polyp model on endoscopy) and measure; the trace shows the point in original pixels."""
    sync_api = pytest.importorskip("playwright.sync_api")
    frame = DATA / "endotect_polyps" / "images" / "0b12103e-e05e-45b4-8388-fb9f3b19a910.jpg"  # 768x576, polyp at the centre
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(app_url, wait_until="load")
            page.wait_for_selector("#question textarea", timeout=60_000)
            page.locator("#current-file input[type=file]").set_input_files(str(frame))
            page.locator("#chat").get_by_text("Loaded the", exact=False).wait_for(timeout=60_000)
            img = page.locator("#current-view img")
            img.wait_for(state="visible", timeout=30_000)
            box = img.bounding_box()
            img.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
            page.locator("#chat").get_by_text("Answer:", exact=False).wait_for(timeout=120_000)
            page.wait_for_function("() => (document.querySelector('#trace')?.innerText || '').includes('measure')",
                                   timeout=30_000)
            trace_text = page.locator("#trace").inner_text()
            chat_text = page.locator("#chat").inner_text()
        finally:
            browser.close()
    assert "Outline and measure the region at (" in chat_text
    assert "segment" in trace_text and "points" in trace_text and "measure" in trace_text
    assert "polyp covers" in chat_text and "failed" not in trace_text
