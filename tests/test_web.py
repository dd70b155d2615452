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
from assets.api.app import create_app
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
    if not (Settings().web_dir / "node_modules" / "@geoman-io" / "leaflet-geoman-free").is_dir():
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
    # The throttle on failed sign-ins has its own tests (test_api_roles); here a phone signs in and out
    # many times, and the requests a page still has in flight as it signs out must not lock it out.
    settings = Settings(db_path=db, as_of=date(2016, 9, 30), signin_failures_max=1000)
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


def _square(lon: float, lat: float, d: float = 0.0006) -> dict[str, Any]:
    """A proposal answer around a point, for page.route: the page's own handling, without the segmentation."""
    ring = [[lon - d, lat - d / 2], [lon + d, lat - d / 2], [lon + d, lat + d / 2], [lon - d, lat + d / 2], [lon - d, lat - d / 2]]
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"area_ha": 0.5, "area_mu": 7.5, "acquired_on": "2016-09-21", "cut_by_search_window": False}}


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
    # the next field is not filed under this one's name or crop by mistake (#15)
    assert page.locator("#field-name").input_value() == "My field" and page.locator("#field-crop").input_value() == ""
    # the imagery is credited (Copernicus asks for it)
    expect(page.locator(".leaflet-control-attribution")).to_contain_text("Contains modified Copernicus Sentinel data")
    expect(page.locator("#my-fields")).to_contain_text("Maize, <b>tapped</b> on a phone", timeout=30_000)
    # Once the card is gone (a reload, the next day), tapping the listed field opens it again from
    # GET /borrowers/{id}: status, area, crop, value, limit, reasons and the next step (#5).
    page.click("#clear")
    assert page.locator("#result").text_content() == ""
    page.click("#my-fields button.open-field")
    expect(page.locator("#result .verdict")).to_have_attribute("data-status", status, timeout=30_000)
    reopened = page.locator("#result").text_content()
    assert "Maize, <b>tapped</b> on a phone" in reopened and "CNY" in reopened and "Next step" in reopened
    assert "declared wheat ('winter wheat') but the imagery shows maize" in reopened, reopened
    assert page.locator("#result").is_visible()
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
    # the API's "no field here" (code no_field) is worded in Chinese, not shown as the English message
    page.evaluate("lastProposal = {error: 'no field detected at 9.1, 56.3', code: 'no_field'}; showProposal()")
    assert "没有识别到地块" in page.locator("#proposal-text").text_content()
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
    # Filing a field for a borrower: the id is required (no request without it), and an id the
    # bank does not know (a typo) is filed only once the officer confirms it (#6).
    posted: list[str] = []

    def fake_claims(route: Any) -> None:
        posted.append(route.request.url)
        route.fulfill(status=201, json=[{"claim_id": "c-fake", "name": "Typo field", "status": "verified",
                                         "verified_area_ha": 1.0, "reasons": []}])

    page.route("**/claims", fake_claims)
    lon, lat = _centre(_feature("farmer-002", 1))
    page.route("**/fields/proposal*", lambda route: route.fulfill(json=_square(lon, lat)))
    page.evaluate(f"map.setView([{lat}, {lon}], 15)")
    page.locator("#map").scroll_into_view_if_needed()
    _tap(page, lon, lat)
    page.click("#accept")
    assert page.locator("#borrower").input_value() == ""
    page.click("#submit")
    expect(page.locator("#result")).to_contain_text("Enter the borrower id")
    page.fill("#borrower", "farmer-0001")
    dialogs: list[str] = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click("#submit")
    expect(page.locator("#result")).to_contain_text("Not filed")
    assert dialogs and "farmer-0001" in dialogs[0] and not posted, (dialogs, posted)
    page.once("dialog", lambda d: d.accept())
    page.click("#submit")
    expect(page.locator("#result")).to_contain_text("Typo field")
    assert len(posted) == 1 and posted[0].endswith("/borrowers/farmer-0001/claims"), posted
    page.fill("#borrower", "farmer-002")  # a borrower the bank knows: no question asked
    page.click("#clear")
    page.locator("#map").scroll_into_view_if_needed()
    _tap(page, lon, lat)
    page.click("#accept")
    page.click("#submit")  # an unexpected dialog would be dismissed and say "Not filed"
    expect(page.locator("#result")).to_contain_text("Typo field")
    assert len(posted) == 2 and posted[1].endswith("/borrowers/farmer-002/claims"), posted
    page.unroute("**/claims")
    page.unroute("**/fields/proposal*")
    page.click("#clear")
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
    # the shown borrower's list and map colours follow the decision (#14)
    expect(page.locator("#borrower-fields")).to_contain_text("Moved wheat: rejected", timeout=30_000)
    assert page.evaluate("fieldsLayer.getLayers()[0].options.color") == "#c62828"  # rejected: red
    # the listed field opens its card with the officer's note (#5)
    page.click("#borrower-fields button.open-field")
    expect(page.locator("#result .verdict")).to_contain_text("moved onto the neighbours' fields", timeout=30_000)
    assert "Contact the bank" in page.locator("#result .verdict .next").text_content()
    _shot(page, "7-officer-decided")
    assert not errors, errors


_VERDICT = {"claim_id": "c-wang", "name": "Wang's maize", "status": "verified", "verified_area_ha": 37.62,
            "crop": "maize", "value_cny": 536422, "limit_cny": 154400,
            "reasons": [{"code": "ok", "message": "37.62 ha of maize confirmed by 7 satellite dates"}]}


def _state(page: Any) -> dict[str, Any]:
    """What the page holds of the signed-in borrower."""
    return page.evaluate("""({ verdicts: lastVerdicts, proposal: lastProposal, field: Boolean(field || working),
        result: document.getElementById('result').textContent.trim(),
        name: document.getElementById('field-name').value, crop: document.getElementById('field-crop').value,
        touched: Boolean(document.getElementById('field-name').dataset.touched
                         || document.getElementById('field-crop').dataset.touched) })""")


_CLEAN = {"verdicts": None, "proposal": None, "field": False, "result": "", "name": "My field", "crop": "", "touched": False}


def test_a_shared_phone_shows_nothing_of_the_previous_farmer(bank, browser) -> None:
    """Sign out, a pasted link, another link opened in the same tab, and the SMS link opened again (#1, #2, #3, #13)."""
    from playwright.sync_api import expect

    url, db = bank
    page, errors = _open_signed_in(browser, _link(db, url))
    expect(page.locator("#who")).to_contain_text("farmer-001")
    lon, lat = _centre(_feature("farmer-001", 1))
    page.evaluate(f"map.setView([{lat}, {lon}], 15)")
    page.route("**/fields/proposal*", lambda route: route.fulfill(json=_square(lon, lat)))
    page.route("**/claims", lambda route: route.fulfill(status=201, json=[_VERDICT]))

    def wang_at_work() -> None:  # a verdict on screen, and the next field proposed, named and cropped
        page.locator("#map").scroll_into_view_if_needed()
        _tap(page, lon, lat)
        page.click("#accept")
        page.click("#submit")
        expect(page.locator("#result")).to_contain_text("Wang's maize")
        page.locator("#map").scroll_into_view_if_needed()
        _tap(page, lon, lat)
        expect(page.locator("#proposal-text")).to_contain_text("ha")
        page.fill("#field-name", "Wang's second field")
        page.fill("#field-crop", "wheat")

    wang_at_work()
    wang_token = page.evaluate("localStorage.getItem('assets.token')")
    page.click("#signout")
    assert _state(page) == _CLEAN, _state(page)
    status = f"fetch('/me', {{headers: {{Authorization: 'Bearer {wang_token}'}}}}).then(r => r.status)"
    for _ in range(50):  # the page ends the session on the server too (its request runs beside the sign-out)
        if page.evaluate(status) == 401:
            break
        page.wait_for_timeout(200)
    assert page.evaluate(status) == 401
    # the next farmer pastes the whole SMS link (or "code=asl_…") into the sign-in box
    zhao = _link(db, url, "zhao")
    page.fill("#signin-code", zhao)
    page.click("#signin-button")
    expect(page.locator("#who")).to_contain_text("zhao (borrower farmer-002)", timeout=30_000)
    assert _state(page) == _CLEAN and page.locator("#drawing").is_visible(), _state(page)
    page.click("#signout")
    page.fill("#signin-code", "code=" + _link(db, url, "zhao").split("#code=")[1])
    page.click("#signin-button")
    expect(page.locator("#who")).to_contain_text("zhao (borrower farmer-002)", timeout=30_000)
    # zhao signed in, wang's new link opened in this tab: only the '#' changes, nothing reloads
    page.fill("#field-name", "Zhao's field")
    page.evaluate("window.sameDocument = true")
    wang = _link(db, url)
    page.goto(wang)
    expect(page.locator("#who")).to_contain_text("wang (borrower farmer-001)", timeout=30_000)
    assert page.evaluate("window.sameDocument === true")  # the hash change itself was handled
    assert "#code=" not in page.url  # the one-time code leaves the address bar
    assert _state(page) == _CLEAN, _state(page)
    wang_at_work()
    page.click("#signout")
    page.goto(wang + "x")  # the same page, a bad code: the used link is explained, no one signed in
    expect(page.locator("#signin-error")).not_to_be_empty(timeout=30_000)
    expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=30_000)
    page.fill("#signin-code", _link(db, url))
    page.click("#signin-button")
    expect(page.locator("#who"), page.locator("#signin-error").text_content() or "").to_contain_text(
        "farmer-001", timeout=30_000)
    # The SMS link opened again later (in another tab): the code is used, the sign-in it bought still holds.
    used = _link(db, url)
    phone = browser.new_context(**PHONE)
    again = phone.new_page()
    again.goto(used)
    expect(again.locator("body")).to_have_attribute("data-ready", "1", timeout=60_000)
    token = again.evaluate("localStorage.getItem('assets.token')")
    again2 = phone.new_page()
    again2.goto(used)
    expect(again2.locator("body")).to_have_attribute("data-ready", "1", timeout=60_000)
    expect(again2.locator("#who")).to_contain_text("farmer-001")
    expect(again2.locator("#signin-error")).to_contain_text("already used")
    assert again2.evaluate("localStorage.getItem('assets.token')") == token
    assert again2.locator("#drawing").is_visible() and again2.locator("#signin-form").is_hidden()
    assert not errors, errors


def test_the_verdict_says_why_and_what_next_with_the_figures_and_the_note(bank, browser) -> None:
    """Chinese reasons keep the server's figures and the officer's note; the next step follows the reasons (#4, #7, #13)."""
    from playwright.sync_api import expect

    url, db = bank
    page, errors = _open_signed_in(browser, _link(db, url))
    expect(page.locator("#who")).to_contain_text("farmer-001")

    def card(status: str, code: str, message: str) -> dict[str, Any]:
        return {"name": code, "status": status, "verified_area_ha": 0.0,
                "reasons": [{"code": code, "message": message, "blocking": True}]}

    claims = [
        card("rejected", "overlap", "15.59 ha (97%) of this field is already claimed by an earlier pledge (yours or "
             "another borrower's); land is pledged once: contact the bank to resolve it"),
        card("rejected", "review_rejected", "rejected by credit officer li: field belongs to the cooperative"),
        card("verified", "review_approved", "approved by credit officer li (boundary): checked on site, <b>fine</b>"),
        card("rejected", "no_imagery", "only 55% of the field lies inside the satellite tiles we hold; it will be "
             "checked when imagery of it arrives"),
        card("rejected", "not_farmland", "only 12% of the drawn area looks like farmland in the imagery"),
    ]
    page.evaluate("(claims) => { lastVerdicts = claims; rerender(); }", claims)
    cards = page.locator("#result .verdict")
    nexts = [cards.nth(i).locator(".next").text_content() for i in range(5)]
    assert "contact the bank" in nexts[0].lower() and "redraw" not in nexts[0], nexts
    assert "contact the bank" in nexts[1].lower() and "redraw" not in nexts[1], nexts
    assert "imagery of it arrives" in nexts[3] and "redraw" not in nexts[3], nexts
    assert "redraw" in nexts[4], nexts  # other rejections: fix the drawing
    page.click("#lang")
    expect(page.locator("#title")).to_have_text("画出您的地块")
    overlap = cards.nth(0).locator(".reasons li")
    assert "联系银行" in overlap.text_content() and "不计入" not in overlap.text_content()
    detail = cards.nth(0).locator(".reasons small.detail")
    expect(detail).to_be_visible()  # the figures, not only in a tooltip a phone cannot open
    expect(detail).to_contain_text("15.59 ha (97%)")
    assert "联系银行" in cards.nth(0).locator(".next").text_content() and "重新画" not in cards.nth(0).locator(".next").text_content()
    # the officer's note in the Chinese sentence itself, not only in the English detail line below it
    said = page.evaluate("[...document.querySelectorAll('#result .verdict .reasons li')]"
                         ".map((li) => li.firstChild.textContent)")
    assert "field belongs to the cooperative" in said[1] and "li" in said[1] and "拒绝" in said[1], said
    assert "checked on site, <b>fine</b>" in said[2] and "批准" in said[2], said
    assert "联系银行" in cards.nth(1).locator(".next").text_content()
    approved = cards.nth(2).locator(".reasons li").first
    expect(approved).to_contain_text("checked on site, <b>fine</b>")  # the note, as text
    assert page.locator("#result .verdict b").count() == 0
    assert "重新画" not in cards.nth(3).locator(".next").text_content() and "影像" in cards.nth(3).locator(".next").text_content()
    assert "重新画" in cards.nth(4).locator(".next").text_content()
    # offline: the phone's network failure is said in Chinese, not as the browser's "Failed to fetch"
    lon, lat = _centre(_feature("farmer-001", 1))
    page.evaluate(f"map.setView([{lat}, {lon}], 15)")
    page.context.set_offline(True)
    page.locator("#map").scroll_into_view_if_needed()
    _tap(page, lon, lat)
    expect(page.locator("#proposal-text")).to_contain_text("网络")
    assert "Failed to fetch" not in page.locator("#proposal-text").text_content()
    page.context.set_offline(False)
    assert not errors, errors


def test_drawing_survives_quick_taps_undo_and_a_lapsed_sign_in(bank, browser) -> None:
    """Only the latest tap's proposal, brought into view; undoing every corner keeps drawing; a 401 keeps
    the field (#8, #10, #11, #12, #15)."""
    from playwright.sync_api import expect

    url, db = bank
    page, errors = _open_signed_in(browser, _link(db, url))
    expect(page.locator("#who")).to_contain_text("farmer-001")
    lon, lat = _centre(_feature("farmer-001", 1))
    a, b = (lon - 0.004, lat), (lon + 0.004, lat)
    page.evaluate(f"map.setView([{lat}, {lon}], 15)")
    held: list[Any] = []
    asked: list[str] = []

    def proposals(route: Any) -> None:  # the first answer comes late (a slow mobile network)
        asked.append(route.request.url)
        if len(asked) == 1:
            held.append(route)
        else:
            route.fulfill(json=_square(*b))

    page.route("**/fields/proposal*", proposals)
    page.locator("#map").scroll_into_view_if_needed()
    _tap(page, *a)
    _tap(page, *b)
    expect(page.locator("#proposal-text")).to_contain_text("ha")
    expect(page.locator("#accept")).to_be_in_viewport()  # on a phone the proposal is below the map
    held[0].fulfill(json=_square(*a))
    page.wait_for_timeout(500)
    assert page.evaluate(f"field.getBounds().contains([{b[1]}, {b[0]}])"), "the earlier tap's answer replaced the later one"
    # Draw by hand; undo every corner: still drawing, the next taps are corners (no proposal asked).
    page.click("#draw")
    page.locator("#map").scroll_into_view_if_needed()
    corners = [(lon - 0.001, lat - 0.0005), (lon + 0.001, lat - 0.0005), (lon + 0.001, lat + 0.0005), (lon - 0.001, lat + 0.0005)]
    for c in corners[:3]:
        _tap(page, *c)
    expect(page.locator("#area")).to_contain_text("3 corners")
    for _ in range(3):
        page.click("#undo")
    expect(page.locator("#area")).to_have_text("No field yet")
    assert page.evaluate("map.pm.globalDrawModeEnabled()") and page.locator("#undo").is_disabled()
    assert "first corner again" in page.locator("#hint").text_content()
    page.locator("#map").scroll_into_view_if_needed()
    before = len(asked)
    for c in corners:
        _tap(page, *c)
    _tap(page, *corners[0])  # close on the first corner
    expect(page.locator("#area")).to_contain_text("4 corners")
    assert len(asked) == before, "a corner tap asked for a proposal"
    assert "first corner again" not in page.locator("#hint").text_content()  # closed: now its corners move
    expect(page.locator("#hint")).to_contain_text("Drag a corner")
    page.click("#lang")  # a language switch keeps the hint of what the farmer is doing
    expect(page.locator("#hint")).to_contain_text("拖动中点")
    page.click("#lang")
    # A corner dragged across the opposite edge is refused and put back: so is the area shown (#9).
    area = page.locator("#area").text_content()
    page.locator("#map").scroll_into_view_if_needed()
    box = page.locator("#map").bounding_box()
    start, end = [page.evaluate(f"(() => {{ const p = map.latLngToContainerPoint([{y}, {x}]); return [p.x, p.y]; }})()")
                  for x, y in (corners[0], (lon + 0.002, lat + 0.0002))]
    page.mouse.move(box["x"] + start[0], box["y"] + start[1])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0], box["y"] + end[1], steps=8)
    page.mouse.up()
    expect(page.locator("#area")).to_have_text(area)
    assert page.evaluate("corners().length") == 4
    # The sign-in lapses (revoked, expired) just as the farmer submits: the drawing and its name stay.
    page.fill("#field-name", "Kept field")
    page.route("**/claims", lambda route: route.fulfill(status=401, json={"error": "this sign-in was revoked"}))
    page.click("#submit")
    expect(page.locator("#signin-error")).to_contain_text("revoked")
    assert page.evaluate("field !== null && corners().length === 4")
    page.unroute("**/claims")
    page.route("**/claims", lambda route: route.fulfill(status=201, json=[{**_VERDICT, "name": "Kept field"}]))
    page.goto(_link(db, url))  # the bank's new link, in the same tab
    expect(page.locator("#who")).to_contain_text("farmer-001", timeout=30_000)
    assert page.locator("#field-name").input_value() == "Kept field" and page.locator("#submit").is_enabled()
    page.click("#submit")
    expect(page.locator("#result")).to_contain_text("Kept field")
    assert not errors, errors


def test_the_api_docs_render_in_a_browser_with_no_network(bank, browser) -> None:
    """Swagger UI comes from its npm package, not a CDN (this machine reaches none): the page lists
    the routes, and an officer's token goes in through Authorize."""
    url, _ = bank
    page = browser.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(f"{url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() >= 10
    assert page.locator("button.authorize").count() == 1
    assert failed == []
    page.close()


def test_a_sign_in_revoked_while_the_map_is_open_signs_the_page_out(bank, browser) -> None:
    """QA 2026-12-08: the map went on fetching tiles with a revoked token (every pan a burst of 401s
    that locked the address out) while the page still said "Signed in as ...". A refused tile now
    signs the page out, keeping the drawing, and no further tile is asked for."""
    from playwright.sync_api import expect

    url, db = bank
    page, errors = _open_signed_in(browser, _link(db, url))
    expect(page.locator("#who")).to_contain_text("farmer-001")
    _wait_for_tiles(page)
    refused: list[str] = []

    def revoked(route: Any) -> None:
        refused.append(route.request.url)
        route.fulfill(status=401, json={"error": "this sign-in was revoked by the bank"})

    page.route("**/map/tiles/**", revoked)
    page.evaluate("map.setZoom(map.getZoom() + 1)")
    expect(page.locator("#signin-form")).to_be_visible()
    expect(page.locator("#signin-error")).to_contain_text("sign-in has ended")
    assert page.evaluate("!localStorage.getItem('assets.token')")
    asked = len(refused)
    page.evaluate("map.panBy([300, 200], {animate: false}); map.setZoom(map.getZoom() - 1)")
    page.wait_for_timeout(800)
    assert len(refused) == asked, "the signed-out page kept asking for tiles"
    assert asked >= 1 and not errors, errors
