"""The map in a real browser (Debian Chromium driven by Playwright), on a phone-sized screen (#13).

A farmer signs in by link, taps inside a field, accepts the proposed boundary, submits and reads
the verdict; edits a corner; cannot see another farmer's fields (through the page and with their
token against the API); an officer sees the portfolio and decides a review. Screenshots are kept
under test-artifacts/web/ (ASSETS_TEST_ARTIFACTS overrides; gitignored).
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import threading
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest

from assets import access
from assets.api.app import WEB_DIR, create_app
from assets.config import Settings
from assets.store import connect

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("ASSETS_TEST_ARTIFACTS", REPO / "test-artifacts")) / "web"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1}


@contextmanager
def _serve(db: Path) -> Iterator[tuple[str, Path]]:
    """The app on a free port in a thread, with farmers wang (farmer-001), zhao (farmer-002), officer li."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (scripts/install_system_deps.sh installs it)")
    if not (WEB_DIR / "node_modules" / "@geoman-io" / "leaflet-geoman-free").is_dir():
        pytest.skip("the map's JavaScript is not installed: run `npm ci --prefix src/assets/web`")
    import uvicorn

    with connect(db) as con:
        access.add_user(con, "wang", "farmer", "farmer-001")
        access.add_user(con, "zhao", "farmer", "farmer-002")
        access.add_user(con, "li", "officer")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the service replays the bundled 2016 season as if it were now (`assets serve --as-of`)
    settings = Settings(db_path=db, as_of=date(2016, 9, 30))
    config = uvicorn.Config(create_app(settings, api_keys=[]), host="127.0.0.1", port=port,
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
def bank(tmp_path: Path):
    """Tiles catalogued, no claims yet: land is pledged once, so each test's drawing is new."""
    from assets.pipeline import catalogue_tiles

    db = tmp_path / "fresh.duckdb"
    settings = Settings(db_path=db)
    catalogue_tiles(db, settings.tiles_dir, settings=settings)
    with _serve(db) as served:
        yield served


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _link(db: Path, url: str, user: str = "wang") -> str:
    """What the bank would SMS: the map's URL with a one-time code after '#'."""
    with connect(db) as con:
        _, link = access.issue_link(con, user, Settings(db_path=db, public_url=url))
    return link


def _token(db: Path, user: str) -> str:
    with connect(db) as con:
        return access.issue_token(con, user, days=1).secret


def _feature(name: str, index: int) -> dict[str, Any]:
    return json.loads((REPO / f"sample_tiles/claims/{name}.geojson").read_text())["features"][index]


def _centre(feature: dict[str, Any]) -> tuple[float, float]:
    import shapely.geometry

    p = shapely.geometry.shape(feature["geometry"]).representative_point()
    return p.x, p.y


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _open_signed_in(browser: Any, link: str) -> tuple[Any, list[str]]:
    from playwright.sync_api import expect

    page = browser.new_page(**PHONE)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(link)
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=60_000)
    return page, errors


def _tap(page: Any, lon: float, lat: float) -> None:
    box = page.locator("#map").bounding_box()
    pt = page.evaluate(f"(() => {{ const p = map.latLngToContainerPoint([{lat}, {lon}]); return [p.x, p.y]; }})()")
    page.mouse.click(box["x"] + pt[0], box["y"] + pt[1])


def _wait_for_tiles(page: Any, timeout_s: float = 60.0) -> None:
    """Polls from Python: `wait_for_function` evaluates its predicate with eval inside the page,
    which the page's own Content-Security-Policy (script-src 'self') rightly refuses."""
    import time

    probe = ("[...document.querySelectorAll('.imagery img')]"
             ".some((i) => i.complete && i.naturalWidth === 256)")
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(probe):
        if time.monotonic() > deadline:
            raise AssertionError("no map tile of the service's imagery loaded")
        page.wait_for_timeout(200)


def test_farmer_taps_a_field_accepts_the_proposal_and_reads_the_verdict(bank, browser) -> None:
    from playwright.sync_api import expect

    url, db = bank
    page, errors = _open_signed_in(browser, _link(db, url))
    expect(page.locator("#who")).to_contain_text("farmer-001")
    assert "#code=" not in page.url  # the one-time code leaves the address bar
    assert page.locator("#borrower-row").is_hidden() and page.locator("#submit").is_disabled()
    expect(page.locator("#imagery-date")).to_contain_text("2016-09-21")  # the latest date
    expect(page.locator("#cloud-free")).to_contain_text("2016-08-12")  # a cloud-free one
    assert "2016-06-25" not in page.locator("#cloud-free").text_content()  # 14 % cloud: not cloud-free
    _wait_for_tiles(page)  # the service's own tiles, fetched with the farmer's token
    expect(page.locator("#my-fields")).to_contain_text("No fields submitted yet")
    page.evaluate("map.setZoom(15)")
    page.evaluate(f"map.setView([{_centre(_feature('farmer-001', 1))[1]}, {_centre(_feature('farmer-001', 1))[0]}], 15)")
    lon, lat = _centre(_feature("farmer-001", 1))  # inside the maize field by the road
    _tap(page, lon, lat)
    expect(page.locator("#proposal-text")).to_contain_text("ha", timeout=60_000)
    proposed = page.locator("#proposal-text").text_content()
    assert "mu" in proposed and page.locator("#submit").is_disabled()  # not submittable before it is accepted
    assert "corners, about" in page.locator("#area").text_content()
    _shot(page, "1-proposal")
    page.click("#accept")
    assert page.locator("#submit").is_enabled()
    page.fill("#field-name", "Maize, <b>tapped</b> on a phone")  # markup in a name stays text everywhere
    page.fill("#field-crop", "winter wheat")  # the farmer's word for it; the imagery says maize
    page.click("#submit")
    page.locator("#result .verdict, #result .error").first.wait_for(timeout=180_000)
    card = page.locator("#result").text_content()
    _shot(page, "2-verdict")
    assert "Maize, <b>tapped</b> on a phone" in card and page.locator("#result .verdict").count() == 1
    status = page.locator("#result .verdict").get_attribute("data-status")
    assert status in ("verified", "partial"), card  # the detected boundary passes the boundary check
    assert "CNY" in card and "Next step" in card
    assert "declared wheat ('winter wheat') but the imagery shows maize" in card, card
    assert "Drag a corner" not in page.locator("#hint").text_content()  # no field left to edit after a submit
    expect(page.locator("#my-fields")).to_contain_text("Maize, <b>tapped</b> on a phone", timeout=30_000)
    assert page.evaluate("fieldsLayer.getLayers().length") == 1  # drawn on the map in its status colour
    tooltip = page.evaluate("fieldsLayer.getLayers()[0].getTooltip().getContent()")  # Leaflet sets it as HTML
    assert tooltip.startswith("Maize, &lt;b&gt;tapped&lt;/b&gt; on a phone: "), tooltip
    assert page.locator("#result b, #my-fields b").count() == 0
    icon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert page.evaluate(f"fetch('{icon}').then((r) => r.status)") == 200  # no 404 in the console for the icon
    waiting = page.evaluate("verdictCard({name: 'x', status: 'review', verified_area_ha: 2.5, reasons: []})")
    assert "Measured area (not verified yet)" in waiting and "2.50 ha (37.5 mu)" in waiting  # not verified land
    page.click("#lang")  # the same page in Chinese, no reload
    expect(page.locator("#result")).to_contain_text("下一步")
    expect(page.locator("#title")).to_have_text("画出您的地块")
    reasons = page.locator("#result .reasons li").all_text_contents()
    assert reasons and all(re.search("[\u4e00-\u9fff]", r) for r in reasons), reasons  # the reasons too
    assert page.locator("#result .reasons li").first.get_attribute("title")  # the English detail, with figures
    card_zh = page.locator("#result .verdict dl").text_content()
    assert "公顷" in card_zh and "亩" in card_zh and "元" in card_zh and "CNY" not in card_zh  # units in Chinese too
    _shot(page, "3-verdict-zh")
    page.reload()  # the token and the language stay for the next visit
    expect(page.locator("#who")).to_contain_text("已登录", timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    assert not errors, errors


def test_farmer_edits_a_corner_and_undoes_it(bank, browser) -> None:
    from playwright.sync_api import expect

    url, db = bank
    page, errors = _open_signed_in(browser, _link(db, url))
    lon, lat = _centre(_feature("farmer-002", 0))  # the winter wheat field
    page.evaluate(f"map.setView([{lat}, {lon}], 15)")
    _tap(page, lon, lat)
    expect(page.locator("#proposal-text")).to_contain_text("ha", timeout=60_000)
    before = page.locator("#area").text_content()
    corners_before = page.evaluate("corners().length")
    # The corner furthest from its neighbours, so the press lands on it and not on a middle marker.
    pt = page.evaluate("""(() => { const ring = corners().map((c) => map.latLngToContainerPoint(c));
        let best = null, gap = -1;
        ring.forEach((p, i) => { const d = Math.min(p.distanceTo(ring[(i + 1) % ring.length]),
                                                   p.distanceTo(ring[(i + ring.length - 1) % ring.length]));
                                 if (d > gap) { gap = d; best = p; } });
        return [best.x, best.y]; })()""")
    box = page.locator("#map").bounding_box()
    x, y = box["x"] + pt[0], box["y"] + pt[1]
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 30, y + 25, steps=8)
    page.mouse.up()
    expect(page.locator("#area")).not_to_have_text(before)
    assert page.evaluate("corners().length") == corners_before  # moved, not added
    assert page.locator("#submit").is_enabled()  # an adjusted proposal is the farmer's drawing
    _shot(page, "4-edited")
    page.click("#undo")
    expect(page.locator("#area")).to_have_text(before)
    # Delete that corner (right-click; a long press on a phone), then undo the deletion.
    page.locator("#map").scroll_into_view_if_needed()  # the undo button may have scrolled the phone's page
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + pt[0], box["y"] + pt[1], button="right")
    expect(page.locator("#area")).not_to_have_text(before)
    assert page.evaluate("corners().length") == corners_before - 1
    page.click("#undo")
    expect(page.locator("#area")).to_have_text(before)
    assert page.evaluate("corners().length") == corners_before
    # Draw by hand: three taps, then the first again to close; snapping is on.
    page.click("#clear")
    page.click("#draw")
    assert page.evaluate("map.pm.globalDrawModeEnabled()") and page.evaluate("map.pm.getGlobalOptions().snappable")
    for dx, dy in ((-0.0008, -0.0004), (0.0008, -0.0004), (0.0, 0.0006)):
        _tap(page, lon + dx, lat + dy)
    expect(page.locator("#area")).to_contain_text("3 corners")
    page.click("#undo")  # the last corner while drawing
    expect(page.locator("#area")).to_contain_text("2 corners")
    assert not errors, errors


def test_a_farmer_sees_only_their_own_fields(bank, browser) -> None:
    from playwright.sync_api import expect

    url, db = bank
    import httpx

    officer = {"Authorization": f"Bearer {_token(db, 'li')}"}
    doc = {"type": "FeatureCollection", "features": [_feature("farmer-002", 1)]}
    r = httpx.post(f"{url}/borrowers/farmer-002/claims", json=doc, headers=officer, timeout=300)
    assert r.status_code == 201, r.text
    page, errors = _open_signed_in(browser, _link(db, url))
    expect(page.locator("#my-fields")).to_contain_text("No fields submitted yet")
    assert page.evaluate("fieldsLayer.getLayers().length") == 0  # zhao's clover field is not on wang's map
    # farmer-002 exists, farmer-999 does not: the page's token, from the page, gets the same 404 for both.
    other = page.evaluate("""async () => Promise.all(['farmer-002', 'farmer-999'].flatMap((id) =>
        ['/borrowers/' + id, '/borrowers/' + id + '/fields']).map(async (path) => {
        const r = await fetch(path, {headers: {Authorization: 'Bearer ' + localStorage.getItem('assets.token')}});
        return [r.status, await r.text()]; }))""")
    assert [s for s, _ in other] == [404] * 4 and other[0][1] == other[2][1] and other[1][1] == other[3][1]
    assert "Clover" not in json.dumps(other)
    token = page.evaluate("localStorage.getItem('assets.token')")
    for path in ("/borrowers/farmer-002", "/borrowers/farmer-002/fields", "/portfolio", "/reviews"):
        answer = httpx.get(url + path, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code in (403, 404) and "Clover" not in answer.text, (path, answer.text)
    _shot(page, "5-own-fields-only")
    # A used link is explained, and the page falls back to the sign-in form.
    fresh = browser.new_context(**PHONE).new_page()
    fresh.goto(page.url.split("#")[0] + "#code=" + "asl_used")
    expect(fresh.locator("#signin-error")).not_to_be_empty(timeout=30_000)
    assert fresh.locator("#signin-form").is_visible() and fresh.locator("#drawing").is_hidden()
    assert not errors, errors


def _moved_wheat(dlon: float = 0.002) -> dict[str, Any]:
    """farmer-002's winter wheat moved ~125 m east, across other fields: it goes to review."""
    feature = copy.deepcopy(_feature("farmer-002", 0))
    feature["geometry"]["coordinates"] = [[[x + dlon, y] for x, y in ring] for ring in feature["geometry"]["coordinates"]]
    feature["properties"]["name"] = "Moved wheat"
    return {"type": "FeatureCollection", "features": [feature]}


def test_an_officer_sees_the_portfolio_and_decides_a_review(bank, browser) -> None:
    from playwright.sync_api import expect

    url, db = bank
    import httpx

    token = _token(db, "li")
    r = httpx.post(f"{url}/borrowers/farmer-002/claims", json=_moved_wheat(),
                   headers={"Authorization": f"Bearer {token}"}, timeout=300)
    assert r.status_code == 201 and r.json()[0]["status"] == "review", r.text
    page, errors = _open_signed_in(browser, url + "/map/")
    page.fill("#signin-code", token)
    page.click("#signin-button")
    expect(page.locator("#who")).to_contain_text("li (officer)", timeout=30_000)
    expect(page.locator("#portfolio")).to_contain_text("farmer-002", timeout=30_000)
    assert page.evaluate("(() => { const w = document.querySelector('.table-wrap'); "
                         "return w.scrollWidth <= w.clientWidth; })()"), "the portfolio scrolls sideways on a phone"
    page.click("#portfolio button.show-borrower[data-borrower='farmer-002']")
    expect(page.locator("#borrower-fields")).to_contain_text("Moved wheat", timeout=30_000)
    colour = page.evaluate("fieldsLayer.getLayers()[0].options.color")
    assert colour == "#1565c0"  # review: blue
    expect(page.locator("#reviews")).to_contain_text("Moved wheat")
    _shot(page, "6-officer")
    item = page.locator("#reviews li.review").first
    item.locator("button[data-decision='reject']").click()
    expect(page.locator("#review-result")).to_contain_text("note")  # a decision needs a why
    item.locator("input.note").fill("moved onto the neighbours' fields")
    item.locator("button[data-decision='reject']").click()
    expect(page.locator("#review-result")).to_contain_text("rejected", timeout=120_000)
    expect(page.locator("#reviews")).to_contain_text("No claims waiting for review", timeout=30_000)
    _shot(page, "7-officer-decided")
    assert not errors, errors
