"""`assets report portfolio` (#14): one self-contained HTML file, rendered in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assets.cli import main
from tests.fixtures_credit import build_bank

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("report")
    build_bank(work / "bank.duckdb")
    assert main(["report", "portfolio", "--db", str(work / "bank.duckdb"), "--out", str(work / "report.html")]) == 0
    return work / "report.html"


def test_report_is_one_self_contained_file(report: Path) -> None:
    text = report.read_text()
    assert "<script" not in text and not re.search(r'(src|href)="(https?:|//|/)', text)
    assert text.count('class="field status-verified"') == 3 and text.count('class="field status-rejected"') == 1
    drawn = re.findall(r'class="field status-(\w+)"', text)  # rejected first, so accepted fields lie on top
    assert drawn.index("rejected") < min(i for i, s in enumerate(drawn) if s == "verified")
    for section in ("Fields by status", "Distributions", "Exposure by crop", "Exposure by region",
                    "Limits changed since the last night", "Alerts"):
        assert section in text
    assert "parameters 2026.12-6 -&gt; test-v2" in text and "crop model crop-v1 -&gt; crop-v2" in text


def test_report_tables_read_as_numbers_and_names(report: Path) -> None:
    """Areas to two decimals (not 61.65991526872833), numbers right and text left, each change naming
    its field (alerts: `test_end_to_end.test_reasons_and_alerts_read_as_text`)."""
    text = report.read_text()
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", text)
    assert cells and not [c for c in cells if re.fullmatch(r"-?[\d,]*\.\d{3,}", c)]
    assert re.search(r'<td class="n">[\d,]+\.\d\d</td>', text)  # an area
    assert '<p id="outside">1 rejected field lies outside this view.</p>' in text  # framed on the lendable fields
    changes = text.split('id="changes"')[1].split("</table>")[0]
    assert "<th>field</th><th>claim</th>" in changes and "<td>-</td><td>c-" not in changes  # each change has a name


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (scripts/install_system_deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(report.as_uri())
        assert page.locator("svg.map polygon.field").count() == 4
        box = page.locator("svg.map").bounding_box()
        assert box and box["width"] > 300 and box["height"] > 200
        assert page.locator("svg.hist").count() == 2
        assert page.locator("#changes tbody tr").count() == 3  # the three verified fields' limits fell
        assert page.locator("#total-limit").inner_text().replace(",", "").isdigit()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert requests == [report.as_uri()] and not errors
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_map_draws_fields_stored_with_altitudes() -> None:
    """QA 2026-12-08: one field stored with Z coordinates made `assets report portfolio` fail for every borrower."""
    import shapely

    from assets.report import _map_svg

    field = shapely.Polygon([(9.1, 56.1, 50), (9.11, 56.1, 51), (9.11, 56.11, 52), (9.1, 56.1, 50)])
    svg = _map_svg([{"geom_wkb": shapely.to_wkb(field), "status": "verified", "name": "gps", "borrower_id": "b",
                     "limit_cny": 1000.0}])
    assert svg.count("<polygon") == 1 and "gps (b)" in svg
