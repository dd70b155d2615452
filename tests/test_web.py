"""The farmer's map in a real browser (Debian Chromium driven by Playwright), on a phone-sized screen."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from assets.api.app import WEB_DIR, create_app
from assets.config import Settings

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
KEY = "farmer-key"


@pytest.fixture
def server(demo_db, tmp_path: Path):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (scripts/install_system_deps.sh installs it)")
    if not (WEB_DIR / "node_modules" / "leaflet").is_dir():
        pytest.skip("Leaflet is not installed: run `npm ci --prefix src/assets/web`")
    import uvicorn

    db = tmp_path / "web.duckdb"
    shutil.copy(demo_db[0], db)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(Settings(db_path=db), api_keys=[KEY]), host="127.0.0.1", port=port,
                            log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_farmer_draws_and_submits_a_field_on_a_phone(server: str, repo: Path, tmp_path: Path) -> None:
    import json

    from playwright.sync_api import sync_playwright

    maize = json.loads((repo / "sample_tiles/claims/farmer-001.geojson").read_text())["features"][1]
    ring = maize["geometry"]["coordinates"][0][:-1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server}/map/")
        page.wait_for_function("document.querySelector('#imagery-date').textContent.includes('Sentinel-2')")
        assert page.locator("#submit").is_disabled()
        # Tap the corners of the maize field, shrunk towards its centre so it stays inside the parcel.
        cx = sum(x for x, _ in ring) / len(ring)
        cy = sum(y for _, y in ring) / len(ring)
        box = page.locator("#map").bounding_box()
        for lon, lat in ring:
            lon, lat = cx + 0.8 * (lon - cx), cy + 0.8 * (lat - cy)
            pt = page.evaluate(f"(() => {{ const p = map.latLngToContainerPoint([{lat}, {lon}]); return [p.x, p.y]; }})()")
            page.mouse.click(box["x"] + pt[0], box["y"] + pt[1])
        assert "corners, about" in page.locator("#area").text_content()
        page.fill("#field-name", "Maize, drawn on a phone")
        page.fill("#borrower", "farmer-001")
        page.fill("#api-key", KEY)
        page.click("#submit")
        page.locator("#result .verdict, #result .error").first.wait_for(timeout=120_000)
        text = page.locator("#result").text_content()
        page.screenshot(path=str(tmp_path / "map.png"), full_page=True)
        browser.close()
    assert "Maize, drawn on a phone" in text
    assert "verified" in text or "partial" in text
    assert "CNY" in text and not errors


def test_wrong_key_is_shown_to_the_farmer(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu",
                                                                          "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{server}/map/")
        page.wait_for_function("document.querySelector('#imagery-date').textContent.includes('Sentinel-2')")
        box = page.locator("#map").bounding_box()
        for dx, dy in ((150, 150), (200, 150), (200, 200)):
            page.mouse.click(box["x"] + dx, box["y"] + dy)
        page.fill("#borrower", "farmer-001")
        page.fill("#api-key", "not-the-key")
        page.click("#submit")
        page.locator("#result .error").wait_for(timeout=30_000)
        assert "X-API-Key" in page.locator("#result .error").text_content()
        browser.close()
