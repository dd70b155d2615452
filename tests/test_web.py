"""The farmer's map in a real browser (Debian Chromium driven by Playwright), on a phone-sized screen."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from assets import access
from assets.api.app import WEB_DIR, create_app
from assets.config import Settings
from assets.store import connect

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def _serve(db: Path) -> Iterator[tuple[str, Path]]:
    """The app on a free port in a thread, with a farmer `wang` bound to farmer-001."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (scripts/install_system_deps.sh installs it)")
    if not (WEB_DIR / "node_modules" / "leaflet").is_dir():
        pytest.skip("Leaflet is not installed: run `npm ci --prefix src/assets/web`")
    import uvicorn

    with connect(db) as con:
        access.add_user(con, "wang", "farmer", "farmer-001")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(Settings(db_path=db), api_keys=[]), host="127.0.0.1", port=port,
                            log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", db
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server(demo_db, tmp_path: Path):
    """The demo season's bank: farmer-001 already holds two verified fields."""
    db = tmp_path / "web.duckdb"
    shutil.copy(demo_db[0], db)
    with _serve(db) as served:
        yield served


@pytest.fixture
def empty_bank(tmp_path: Path):
    """Tiles catalogued, no claims yet: land is pledged once, so the farmer's drawing must be new."""
    from assets.pipeline import catalogue_tiles

    db = tmp_path / "fresh.duckdb"
    settings = Settings(db_path=db)
    catalogue_tiles(db, settings.tiles_dir, settings=settings)
    with _serve(db) as served:
        yield served


def _sign_in_link(db: Path, url: str) -> str:
    """What the bank would SMS: the map's URL with a one-time code after '#'."""
    with connect(db) as con:
        _, link = access.issue_link(con, "wang", Settings(db_path=db, public_url=url))
    return link


def test_farmer_draws_and_submits_a_field_on_a_phone(empty_bank: tuple[str, Path], repo: Path, tmp_path: Path) -> None:
    import json

    from playwright.sync_api import expect, sync_playwright

    url, db = empty_bank
    link = _sign_in_link(db, url)

    maize = json.loads((repo / "sample_tiles/claims/farmer-001.geojson").read_text())["features"][1]
    ring = maize["geometry"]["coordinates"][0][:-1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(link)
        expect(page.locator('#imagery-date')).to_contain_text('Sentinel-2', timeout=30_000)
        expect(page.locator('#who')).to_contain_text('Signed in as wang', timeout=30_000)
        assert "#code=" not in page.url  # the one-time code leaves the address bar
        assert "farmer-001" in page.locator("#who").text_content() and page.locator("#borrower-row").is_hidden()
        assert page.locator("#submit").is_disabled()
        expect(page.locator('#my-fields')).to_contain_text('No fields submitted yet', timeout=30_000)
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
        page.click("#submit")
        page.locator("#result .verdict, #result .error").first.wait_for(timeout=120_000)
        text = page.locator("#result").text_content()
        expect(page.locator('#my-fields')).to_contain_text('Maize, drawn on a phone', timeout=30_000)
        page.screenshot(path=str(tmp_path / "map.png"), full_page=True)
        page.reload()  # the token stays for the next visit
        expect(page.locator('#who')).to_contain_text('Signed in as wang', timeout=30_000)
        browser.close()
    assert "Maize, drawn on a phone" in text
    assert "verified" in text or "partial" in text
    assert "CNY" in text and not errors


def test_a_farmer_sees_only_their_own_fields_and_a_used_link_is_explained(server: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, db = server
    link = _sign_in_link(db, url)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu",
                                                                          "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(link)
        expect(page.locator('#who')).to_contain_text('Signed in as wang', timeout=30_000)
        expect(page.locator('#my-fields')).to_contain_text('verified', timeout=30_000)  # their own two fields
        # farmer-002 exists, farmer-999 does not: the page's token, from the page, gets the same 404 for both.
        other = page.evaluate("""async () => Promise.all(['farmer-002', 'farmer-999'].map(async (id) => {
            const r = await fetch('/borrowers/' + id, {headers: {Authorization: 'Bearer ' + localStorage.getItem('assets.token')}});
            return [r.status, await r.text()]; }))""")
        assert other[0][0] == other[1][0] == 404 and other[0][1] == other[1][1]
        context = browser.new_context(viewport={"width": 390, "height": 844})
        fresh = context.new_page()
        fresh.goto(link)  # the same link again
        fresh.locator("#signin-error").wait_for(timeout=30_000)
        expect(fresh.locator('#signin-error')).not_to_be_empty(timeout=30_000)
        assert "already used" in fresh.locator("#signin-error").text_content()
        assert fresh.locator("#signin-form").is_visible() and fresh.locator("#submit").is_disabled()
        fresh.fill("#signin-code", "not-a-token")
        fresh.click("#signin-button")
        expect(fresh.locator('#signin-error')).to_contain_text('unknown', timeout=30_000)
        browser.close()
