"""Who may call which route (every route x every role), and the API's abuse limits (issue #13).

Runs on a small database built here (no models, no imagery), so it is quick; the claims that
reach the pipeline are in test_api.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount

from assets import access
from assets.access import Role
from assets.api.app import create_app
from assets.api.deps import route_roles, served_routes
from assets.config import Settings
from assets.errors import InputError
from assets.store import connect
from assets.store import users as store

PUBLIC = None
FARMER, OFFICER, OPERATIONS = Role.FARMER, Role.OFFICER, Role.OPERATIONS
# Every route the app serves and who may use it. A new route missing here fails
# test_every_route_is_listed_and_declares_its_audience: decide who may call it, then add it.
EXPECTED: dict[tuple[str, str], frozenset[Role] | None] = {
    ("GET", "/health"): PUBLIC,
    ("POST", "/auth/exchange"): PUBLIC,
    ("GET", "/imagery/latest"): PUBLIC,
    ("GET", "/imagery/{tile_id}.png"): PUBLIC,
    ("GET", "/me"): frozenset({FARMER, OFFICER, OPERATIONS}),
    ("GET", "/portfolio"): frozenset({OFFICER, OPERATIONS}),
    ("GET", "/alerts"): frozenset({OFFICER, OPERATIONS}),
    ("POST", "/alerts/{alert_id}/resolve"): frozenset({OFFICER, OPERATIONS}),
    ("GET", "/borrowers/{borrower_id}"): frozenset({FARMER, OFFICER}),
    ("POST", "/borrowers/{borrower_id}/claims"): frozenset({FARMER, OFFICER}),
    ("GET", "/credit/borrowers/{borrower_id}/explain"): frozenset({OFFICER}),
    ("GET", "/credit/borrowers/{borrower_id}/history"): frozenset({OFFICER}),
    ("GET", "/credit/portfolio"): frozenset({OFFICER}),
    ("GET", "/reviews"): frozenset({OFFICER}),
    ("POST", "/reviews/{claim_id}"): frozenset({OFFICER}),
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/map/imagery"): frozenset({FARMER, OFFICER, OPERATIONS}),
    ("GET", "/map/tiles/{z}/{x}/{y}.png"): frozenset({FARMER, OFFICER, OPERATIONS}),
    ("GET", "/borrowers/{borrower_id}/fields"): frozenset({FARMER, OFFICER}),
    ("GET", "/fields/proposal"): frozenset({FARMER, OFFICER}),
    ("POST", "/me/signout"): frozenset({FARMER, OFFICER, OPERATIONS}),  # last: it ends the caller's session
}
# the map page, Leaflet, Geoman, the docs' Swagger UI: public
STATIC_MOUNTS = {"/map", "/vendor/leaflet", "/vendor/leaflet-geoman", "/vendor/swagger-ui"}
EMPTY = {"type": "FeatureCollection", "features": []}  # reaches the claim reader, never the models


def _square(lon: float, lat: float, d: float = 0.001) -> dict:
    ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
    return {"type": "Feature", "properties": {"name": "field"}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def _build(db: Path) -> dict[str, dict[str, str]]:
    """Two borrowers with one claim each, a user per role; returns each role's auth headers."""
    with connect(db) as con:
        for b in ("farmer-001", "farmer-002"):
            con.execute("INSERT INTO borrowers (borrower_id) VALUES (?)", [b])
            con.execute("INSERT INTO claims (claim_id, borrower_id, name, submitted_at, source, geojson, status, reason) "
                        "VALUES (?, ?, 'plot', now(), 'test', '{}', 'rejected', 'test claim')", [f"c-{b}", b])
        access.add_user(con, "wang", "farmer", "farmer-001")
        access.add_user(con, "zhao", "farmer", "farmer-002")
        access.add_user(con, "li", "officer")
        access.add_user(con, "ops", "operations")
        tokens = {name: access.issue_token(con, name, days=1).secret for name in ("wang", "zhao", "li", "ops")}
    return {role: {"Authorization": f"Bearer {tokens[name]}"}
            for role, name in (("farmer", "wang"), ("farmer2", "zhao"), ("officer", "li"), ("operations", "ops"))}


@pytest.fixture
def world(tmp_path: Path) -> dict[str, dict[str, str]]:
    return _build(tmp_path / "roles.duckdb")


def _client(tmp_path: Path, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(db_path=tmp_path / "roles.duckdb", **settings), api_keys=[]))


@pytest.fixture
def client(world, tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path) as c:
        yield c


def _call(c: TestClient, method: str, path: str, headers: dict[str, str]):
    url = (path.replace("{borrower_id}", "farmer-001").replace("{tile_id}", "no-such-tile")
           .replace("{z}/{x}/{y}", "12/2150/1260").replace("/fields/proposal", "/fields/proposal?lon=9.1&lat=56.1"))
    if path == "/auth/exchange":  # a fresh one-time code each time
        with connect(c.app.state.settings.db_path) as con:
            link, _ = access.issue_link(con, "wang", c.app.state.settings)
        return c.post(url, json={"code": link.secret}, headers=headers)
    if method == "POST":
        return c.post(url, json=EMPTY, headers=headers)
    return c.get(url, headers=headers)


def test_every_route_is_listed_and_declares_its_audience(client: TestClient) -> None:
    seen = set()
    for route in served_routes(client.app):
        if isinstance(route.original_route, Mount):
            assert route.path in STATIC_MOUNTS, f"unexpected mount {route.path}: decide who may see it"
            continue
        assert isinstance(route.original_route, APIRoute), f"{route!r} is not an APIRoute, so it declares no role"
        for method in route.methods - {"HEAD"}:
            key = (method, route.path)
            assert key in EXPECTED, f"{key} is not in EXPECTED: decide who may call it and add it"
            assert route_roles(route) == EXPECTED[key], key
            seen.add(key)
    assert seen == set(EXPECTED)


@pytest.mark.parametrize("role", [None, "farmer", "officer", "operations"])
def test_every_route_answers_only_its_roles(client: TestClient, world, role: str | None) -> None:
    headers = world[role] if role else {}
    for (method, path), allowed in EXPECTED.items():
        r = _call(client, method, path, headers)
        if allowed is PUBLIC:
            assert r.status_code not in (401, 403), (method, path, role, r.text)
        elif role is None:
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
        elif Role(role) not in allowed:
            assert r.status_code == 403, (method, path, role, r.text)
            assert "you are signed in as " + {"farmer": "a farmer", "officer": "an officer",
                                              "operations": "an operations user"}[role] in r.json()["error"]
        else:
            assert r.status_code not in (401, 403), (method, path, role, r.text)


def test_a_farmer_sees_only_their_own_borrower(client: TestClient, world) -> None:
    farmer = world["farmer"]
    assert client.get("/me", headers=farmer).json() == {"name": "wang", "role": "farmer", "borrower_id": "farmer-001",
                                                        "expires_at": client.get("/me", headers=farmer).json()["expires_at"]}
    own = client.get("/borrowers/farmer-001", headers=farmer)
    assert own.status_code == 200 and own.json()["borrower"]["borrower_id"] == "farmer-001"
    other = client.get("/borrowers/farmer-002", headers=farmer)
    missing = client.get("/borrowers/farmer-999", headers=farmer)
    assert other.status_code == missing.status_code == 404
    assert other.content == missing.content and "farmer-002" not in other.text
    assert other.headers["content-length"] == missing.headers["content-length"]
    assert client.get("/borrowers/farmer-002", headers=world["farmer2"]).status_code == 200
    assert client.get("/borrowers/farmer-002", headers=world["officer"]).status_code == 200


def test_a_farmer_cannot_file_claims_for_another_borrower(client: TestClient, world, tmp_path: Path) -> None:
    doc = {"type": "FeatureCollection", "features": [_square(9.1, 56.1)]}
    other = client.post("/borrowers/farmer-002/claims", json=doc, headers=world["farmer"])
    missing = client.post("/borrowers/farmer-999/claims", json=doc, headers=world["farmer"])
    assert other.status_code == missing.status_code == 404 and other.content == missing.content
    assert client.get("/borrowers/farmer-001", headers=world["farmer"]).json()["borrower"]["claims"] == 1
    with connect(tmp_path / "roles.duckdb") as con:
        assert con.execute("SELECT count(*) FROM claims").fetchone()[0] == 2
        assert con.execute("SELECT count(*) FROM borrowers WHERE borrower_id = 'farmer-999'").fetchone()[0] == 0


def test_look_alike_borrower_ids_are_refused(client: TestClient, world, tmp_path: Path) -> None:
    r = client.post("/borrowers/farmer-00１/claims", json={"type": "FeatureCollection", "features": [_square(9.1, 56.1)]},
                    headers=world["officer"])
    assert r.status_code == 422 and "look-alike" in r.json()["error"]
    assert client.get("/borrowers/farmer-00１", headers=world["officer"]).status_code == 422
    assert client.get("/borrowers/farmer-00１", headers=world["farmer"]).status_code == 404
    with connect(tmp_path / "roles.duckdb") as con:
        assert con.execute("SELECT count(*) FROM borrowers").fetchone()[0] == 2


def test_revoked_and_expired_tokens_get_401(client: TestClient, world, tmp_path: Path) -> None:
    with connect(tmp_path / "roles.duckdb") as con:
        short = access.issue_token(con, "li", days=1)
        con.execute("UPDATE api_tokens SET expires_at = now() - INTERVAL 1 MINUTE WHERE token_id = ?", [short.token_id])
        access.revoke(con, "wang")
    expired = client.get("/me", headers={"Authorization": f"Bearer {short.secret}"})
    assert expired.status_code == 401 and "expired" in expired.json()["error"]
    revoked = client.get("/borrowers/farmer-001", headers=world["farmer"])
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
    assert client.get("/me", headers=world["officer"]).status_code == 200


def test_sign_in_link_exchanges_once(client: TestClient, tmp_path: Path) -> None:
    with connect(tmp_path / "roles.duckdb") as con:
        link, url = access.issue_link(con, "wang", Settings(db_path=tmp_path / "roles.duckdb"))
    code = url.split("#code=", 1)[1]
    r = client.post("/auth/exchange", json={"code": code})
    assert r.status_code == 200, r.text
    assert (r.json()["role"], r.json()["borrower_id"]) == ("farmer", "farmer-001")
    me = client.get("/me", headers={"Authorization": f"Bearer {r.json()['token']}"})
    assert me.json()["borrower_id"] == "farmer-001"
    again = client.post("/auth/exchange", json={"code": code})
    assert again.status_code == 401 and "already used" in again.json()["error"]
    assert client.get("/me", headers={"Authorization": f"Bearer {code}"}).status_code == 401
    for bad in (b"not json", b'{"code": 5}', b"[" * 5000 + b"]" * 5000):
        assert client.post("/auth/exchange", content=bad, headers={"Content-Type": "application/json"}).status_code == 422


def test_failed_sign_ins_are_throttled_per_address(world, tmp_path: Path) -> None:
    with _client(tmp_path, signin_failures_max=3, signin_failure_window_s=60) as c:
        for _ in range(2):
            assert c.get("/me", headers={"Authorization": "Bearer guess"}).status_code == 401
        assert c.post("/auth/exchange", json={"code": "guess"}).status_code == 401
        blocked = c.get("/me", headers={"Authorization": "Bearer guess-4"})  # guessing stops here
        assert blocked.status_code == 429 and 0 < int(blocked.headers["retry-after"]) <= 60
        assert "signin_failures_max" in blocked.json()["error"]
        assert c.post("/auth/exchange", json={"code": "guess"}).status_code == 429
        assert c.get("/health").status_code == 200
        # a right token is no guess: its holder behind the same address (a village's Wi-Fi) gets in
        assert c.get("/me", headers=world["officer"]).status_code == 200


def test_a_revoked_sign_in_on_an_open_map_locks_no_one_out(world, tmp_path: Path) -> None:
    """QA 2026-12-08: a farmer's map kept panning with a revoked token; each refused tile counted as
    a failed sign-in and after ten everyone at that address, officers included, got 429 for 5 min."""
    from assets import access as acc

    with _client(tmp_path, signin_failures_max=3, signin_failure_window_s=60, map_token_cache_s=0) as c:
        with connect(tmp_path / "roles.duckdb") as con:
            acc.add_user(con, "liu", "farmer", "farmer-005")
            dead = {"Authorization": f"Bearer {acc.issue_token(con, 'liu', days=1).secret}"}
            acc.revoke(con, "liu")
        for _ in range(12):
            r = c.get("/map/tiles/12/2150/1260.png", headers=dead)
            assert r.status_code == 401 and "revoked" in r.json()["error"]
        assert c.get("/me", headers=dead).status_code == 401
        assert c.get("/me", headers=world["officer"]).status_code == 200
        assert c.get("/me", headers=world["farmer"]).status_code == 200


def test_requests_are_throttled_per_token(world, tmp_path: Path) -> None:
    with _client(tmp_path, requests_per_token_per_min=5) as c:
        for _ in range(5):
            assert c.get("/me", headers=world["farmer"]).status_code == 200
        r = c.get("/me", headers=world["farmer"])
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
        assert "requests_per_token_per_min" in r.json()["error"]
        assert c.get("/me", headers=world["officer"]).status_code == 200  # another token has its own budget


def test_body_size_is_capped(world, tmp_path: Path) -> None:
    with _client(tmp_path, max_body_bytes=1000) as c:
        url, farmer = "/borrowers/farmer-001/claims", world["farmer"]
        r = c.post(url, content=b"x" * 5000, headers={**farmer, "Content-Type": "application/json"})
        assert r.status_code == 413 and "1,000 bytes" in r.json()["error"] and "max_body_bytes" in r.json()["error"]
        chunked = c.post(url, content=iter([b"x" * 600, b"x" * 600]), headers={**farmer, "Content-Type": "application/json"})
        assert chunked.status_code == 413
        assert c.post(url, content=b"x", headers={**farmer, "Content-Length": "lots"}).status_code in (400, 422)
        assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("doc, limit", [
    ({"type": "FeatureCollection", "features": [_square(9.1 + i * 0.01, 56.1) for i in range(4)]}, "max_claim_features"),
    ({"type": "Polygon", "coordinates": [[[9.1 + i * 1e-5, 56.1] for i in range(30)] + [[9.1, 56.2], [9.1, 56.1]]]},
     "max_claim_vertices"),
    ({"type": "Feature", "properties": {"name": "n" * 500}, "geometry": _square(9.1, 56.1)["geometry"]},
     "max_field_name_chars"),
])
def test_claim_size_caps_name_the_limit(world, tmp_path: Path, doc: dict, limit: str) -> None:
    with _client(tmp_path, max_claim_features=3, max_claim_vertices=25, max_field_name_chars=100) as c:
        r = c.post("/borrowers/farmer-001/claims", json=doc, headers=world["farmer"])
        assert r.status_code == 413 and limit in r.json()["error"], r.text
    with connect(tmp_path / "roles.duckdb") as con:
        assert con.execute("SELECT count(*) FROM claims").fetchone()[0] == 2


def test_bad_bodies_are_422_not_500(client: TestClient, world) -> None:
    url, farmer = "/borrowers/farmer-001/claims", world["farmer"]
    for body in (b"{", b"[1, 2]", b'"text"', b"[" * 100_000 + b"]" * 100_000, b'{"type": "FeatureCollection", "features": 7}'):
        r = client.post(url, content=body, headers={**farmer, "Content-Type": "application/json"})
        assert r.status_code in (413, 422), (body[:20], r.status_code, r.text)


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_non_ascii_credentials_are_401_not_500(client: TestClient, header: str) -> None:
    for value in ("ключ".encode(), "Bearer ключ".encode(), "Bearer ast_\u00e9".encode("latin-1"), b"Bearer \xff\xfe",
                  "密钥".encode()):
        r = client.get("/portfolio", headers={header: value})
        assert r.status_code == 401, (header, value, r.status_code)
        assert r.json()["error"]
    assert client.get("/health", headers={"X-Odd": "ключ".encode()}).status_code == 200


def test_security_headers_on_every_answer(client: TestClient, world) -> None:
    for r in (client.get("/health"), client.get("/portfolio"), client.get("/me", headers=world["farmer"]),
              client.get("/borrowers/farmer-002", headers=world["farmer"])):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store"
    page = client.get("/map/")
    if page.status_code == 200:  # Leaflet installed
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"


def test_docs_open_in_a_browser_with_no_cdn(client: TestClient, world) -> None:
    """A browser cannot send a bearer token with the page, and the bank's network may not reach a
    CDN: the description is open (it holds no borrower's data) and Swagger UI is served from npm."""
    for path in ("/docs", "/openapi.json"):
        assert client.get(path).status_code == 200
    page = client.get("/docs").text
    assert "cdn" not in page.lower() and "/vendor/swagger-ui/swagger-ui-bundle.js" in page
    bundle = client.get("/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text
    assert client.get("/vendor/swagger-ui/swagger-ui.css").status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"], "Swagger's Authorize button takes the bearer token"
    assert "/borrowers/{borrower_id}/claims" in schema["paths"] and "/docs" not in schema["paths"]
    assert client.get("/redoc").status_code == 404


def test_officer_requests_are_audited(client: TestClient, world, tmp_path: Path) -> None:
    assert client.get("/borrowers/farmer-002", headers=world["officer"]).status_code == 200
    assert client.get("/borrowers/farmer-999", headers=world["officer"]).status_code == 404
    client.get("/borrowers/farmer-001", headers=world["farmer"])
    with connect(tmp_path / "roles.duckdb") as con:
        rows = [r for r in store.audit_log(con) if r["role"] != "cli"]
    assert {(r["user_name"], r["action"], r["target"], r["status"]) for r in rows} == {
        ("li", "GET /borrowers/{borrower_id}", "farmer-002", 200),
        ("li", "GET /borrowers/{borrower_id}", "farmer-999", 404)}
    assert all(r["audited_at"] is not None and r["token_id"] for r in rows)


def test_api_keys_are_officers(world, tmp_path: Path) -> None:
    k1 = "k1-" + "x" * 30
    with TestClient(create_app(Settings(db_path=tmp_path / "roles.duckdb"), api_keys=[k1])) as c:
        assert c.get("/portfolio", headers={"X-API-Key": k1}).status_code == 200
        assert c.get("/me", headers={"Authorization": f"Bearer {k1}"}).json()["role"] == "officer"
        assert c.get("/portfolio", headers={"X-API-Key": "k2-" + "x" * 30}).status_code == 401


def test_a_guessable_api_key_stops_the_server_from_starting(tmp_path: Path) -> None:
    """QA 2026-12-08: ASSETS_API_KEYS=k1 made a two-character officer key that never expires."""
    with pytest.raises(InputError, match="entry 2 has 2 characters; an officer key needs at least 24"):
        create_app(Settings(db_path=tmp_path / "roles.duckdb"), api_keys=["y" * 24, "k1"])


def test_audit_rows_name_what_was_decided_and_with_which_parameters(client: TestClient, world, tmp_path: Path) -> None:
    """QA 2026-12-08: a review decision was logged with no target, so the log did not say which claim
    was approved; an officer's ?as_of= was not logged either."""
    client.post("/reviews/c-0000000000000000", headers=world["officer"], json={"decision": "approve", "note": "ok"})
    client.get("/credit/borrowers/farmer-002/explain?as_of=2016-09-30", headers=world["officer"])
    with connect(tmp_path / "roles.duckdb") as con:
        rows = {(r["action"], r["target"], r["status"]) for r in store.audit_log(con) if r["role"] != "cli"}
    assert ("POST /reviews/{claim_id}", "c-0000000000000000", 404) in rows
    assert any(a == "GET /credit/borrowers/{borrower_id}/explain?as_of=2016-09-30" and t == "farmer-002"
               for a, t, _ in rows), rows


def test_only_officers_set_the_assessment_date_and_never_a_future_one(client: TestClient, world, tmp_path: Path) -> None:
    """QA 2026-12-07: a farmer's `?as_of=2099-12-31` was stored as the decision date (it would stay the
    current verdict over every real night), and `as_of=9999-12-31` left a claim with no verdict."""
    doc = {"type": "FeatureCollection", "features": [_square(9.1, 56.1)]}
    r = client.post("/borrowers/farmer-001/claims?as_of=2016-09-30", json=doc, headers=world["farmer"])
    assert r.status_code == 403 and "only a credit officer may set the assessment date" in r.json()["error"]
    for when, says in (("2099-12-31", "is after today"), ("9999-12-31", "is after today"),
                       ("0001-01-01", "before the first Sentinel-2 images")):
        r = client.post(f"/borrowers/farmer-001/claims?as_of={when}", json=doc, headers=world["officer"])
        assert r.status_code == 422 and says in r.json()["error"], r.text
    with connect(tmp_path / "roles.duckdb") as con:
        assert con.execute("SELECT count(*) FROM claims").fetchone()[0] == 2  # nothing stored


def test_every_refusal_is_one_json_error(client: TestClient, world, tmp_path: Path, monkeypatch) -> None:
    missing = client.get("/no-such-route", headers=world["officer"])
    assert missing.status_code == 404 and "no such address /no-such-route" in missing.json()["error"]
    wrong = client.put("/borrowers/farmer-001", headers=world["officer"])
    assert wrong.status_code == 405 and wrong.json() == {"error": "PUT is not allowed on /borrowers/farmer-001"}

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("assets.store.queries.alerts", broken)
    with TestClient(client.app, raise_server_exceptions=False) as c:
        r = c.get("/alerts", headers=world["officer"])
    assert r.status_code == 500 and r.json()["error"].startswith("internal error (reference ")
    assert "a bug" not in r.text and "Traceback" not in r.text


def test_a_revoked_token_keeps_only_map_tiles_for_the_cache_time(client: TestClient, world, tmp_path: Path) -> None:
    farmer = world["farmer"]
    assert client.get("/map/tiles/12/2150/1260.png", headers=farmer).status_code == 200  # identity remembered
    with connect(tmp_path / "roles.duckdb") as con:
        access.revoke(con, "wang")
    assert client.get("/map/tiles/12/2150/1260.png", headers=farmer).status_code == 200  # tiles: public imagery
    assert client.get("/map/imagery", headers=farmer).status_code == 401  # anything else: checked every time


def test_sign_ins_and_officer_audit_rows_reach_the_snapshot(client: TestClient, world, tmp_path: Path,
                                                            monkeypatch) -> None:
    """Both are written by the file's one writer, which marks the read snapshot stale after each, or
    `assets users list` beside a running server shows a used link as unused."""
    noted: list[Path] = []
    monkeypatch.setattr("assets.store.writer.published", lambda db: noted.append(Path(db)))
    with connect(tmp_path / "roles.duckdb") as con:
        link, _ = access.issue_link(con, "wang", Settings(db_path=tmp_path / "roles.duckdb"))
    assert client.post("/auth/exchange", json={"code": link.secret}).status_code == 200
    assert noted == [tmp_path / "roles.duckdb"]
    assert client.get("/portfolio", headers=world["officer"]).status_code == 200  # an audited officer request
    assert noted == [tmp_path / "roles.duckdb"] * 2


def test_a_parameter_a_route_does_not_take_is_refused(client: TestClient, world) -> None:
    """QA 2026-12-07: `?sort=limit_cny&desc=true` answered 200 smallest first, `?min_limit=` everyone."""
    for query, unknown in (("sort=limit_cny&desc=true", "desc"), ("min_limit=100000", "min_limit"), ("from=2016-10-01", "from")):
        r = client.get(f"/credit/portfolio?{query}", headers=world["officer"])
        assert r.status_code == 422, r.text
        assert f"does not take {unknown}" in r.json()["error"] and "descending" in r.json()["error"]
    assert client.get("/credit/portfolio?descending=true&min_limit_cny=0", headers=world["officer"]).status_code == 200
    assert "no query parameters" in client.get("/me?x=1", headers=world["farmer"]).json()["error"]


def test_signing_out_ends_the_session_on_the_server(world, tmp_path: Path) -> None:
    """Access QA 2026-12-08: "Sign out" only forgot the token in the page; a lost or lent phone kept a
    working 90-day session until the bank revoked the user."""
    k1 = "k1-" + "x" * 30
    with TestClient(create_app(Settings(db_path=tmp_path / "roles.duckdb"), api_keys=[k1])) as c:
        assert c.post("/me/signout", headers=world["farmer"]).json() == {"signed_out": "wang"}
        assert c.get("/me", headers=world["farmer"]).status_code == 401
        assert c.get("/me", headers=world["farmer2"]).status_code == 200  # another farmer's session stands
        refused = c.post("/me/signout", headers={"X-API-Key": k1})
        assert refused.status_code == 422 and "ASSETS_API_KEYS" in refused.json()["error"]
    with connect(tmp_path / "roles.duckdb") as con:
        assert [(r["user_name"], r["action"]) for r in store.audit_log(con) if r["action"] == "sign out"] == [
            ("wang", "sign out")]


@pytest.mark.parametrize("trusted, locked", [("", True), ("127.0.0.1", False)])
def test_x_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path, trusted: str, locked: bool) -> None:
    """Access QA 2026-12-08: from loopback a client chose the address its failed sign-ins counted against
    by sending X-Forwarded-For (10.9.9.9 locked -> 10.9.9.10 answered)."""
    import socket
    import threading
    import time
    import urllib.error
    import urllib.request

    import uvicorn

    from assets.api.app import server_options

    settings = Settings(db_path=tmp_path / "proxy.duckdb", signin_failures_max=2, trusted_proxies=trusted)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings, api_keys=[]), host="127.0.0.1", port=port,
                                           log_level="warning", **server_options(settings)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)

    def guess(address: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/me", headers={
            "Authorization": "Bearer guess", "X-Forwarded-For": address})
        try:
            with urllib.request.urlopen(request) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        answers = [guess(f"10.9.9.{i}") for i in range(4)]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert answers == ([401, 401, 429, 429] if locked else [401, 401, 401, 401]), answers
