"""Benchmark (#13): a farmer's 2,000-mu (133 ha) field, submitted over HTTP, until the verdict comes back.

Starts `assets serve` on loopback in its own process over a fresh database (the bundled season
catalogued), signs 21 farmers in through their one-time links (`POST /auth/exchange`), then:
- warm: one submission to warm the server (models, segmentation cache), then ``--rounds``
  submissions one after another -> p50 / p95;
- concurrent: 20 farmers submit at once -> p95 (and p50) over their 20 requests;
- map tiles: every XYZ tile over the imagery at zooms 13-17, fetched by 6 parallel clients (a
  browser's connections per host), first uncached (rendered) then again (LRU) -> tiles/s.
Each submission is a new 1,155 m square at its own offset inside the imagery (a new pledge, so
none is answered from the same-field shortcut); squares overlapping earlier ones are verified
all the same (and rejected for `overlap`): the latency is that of the full verification.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
FIELD_HA = 2000 / 15  # 2,000 mu


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _square(lon: float, lat: float, area_ha: float) -> dict:
    side_m = math.sqrt(area_ha * 1e4)
    dlat = side_m / 111_320 / 2
    dlon = side_m / (111_320 * math.cos(math.radians(lat))) / 2
    ring = [[lon - dlon, lat - dlat], [lon + dlon, lat - dlat], [lon + dlon, lat + dlat], [lon - dlon, lat + dlat],
            [lon - dlon, lat - dlat]]
    return {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "2,000 mu"},
                                                       "geometry": {"type": "Polygon", "coordinates": [ring]}}]}


def _xyz(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="sequential submissions on the warm server")
    ap.add_argument("--concurrent", type=int, default=20, help="farmers submitting at once")
    ap.add_argument("--no-tiles", action="store_true", help="skip the map-tile part (submissions only)")
    args = ap.parse_args()

    from assets import access
    from assets.config import Settings
    from assets.pipeline import catalogue_tiles
    from assets.store import connect

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        settings = Settings(db_path=db, tiles_dir=REPO / "sample_tiles")
        tiles = catalogue_tiles(db, settings.tiles_dir, settings=settings)
        west, south, east, north = tiles[0].bounds_lonlat
        n_farmers = 1 + args.rounds + args.concurrent
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        with connect(db) as con:
            codes = []
            for i in range(n_farmers):
                access.add_user(con, f"farmer{i:03d}", "farmer", f"farmer-b{i:03d}")
                link, _ = access.issue_link(con, f"farmer{i:03d}", Settings(db_path=db, public_url=url))
                codes.append(link.secret)
        env = {**os.environ, "ASSETS_TILES": str(settings.tiles_dir), "PYTHONPATH": str(REPO / "src")}
        log = open(Path(tmp) / "server.log", "w+b")
        server = subprocess.Popen([sys.executable, "-m", "assets.cli", "serve", "--db", str(db), "--host", "127.0.0.1",
                                   "--port", str(port), "--as-of", "2016-09-30"],  # the bundled season's end
                                  env=env, stdout=subprocess.DEVNULL, stderr=log)

        def fail(message: str) -> None:
            log.seek(0)
            sys.exit(f"{message}\nserver log:\n{log.read().decode(errors='replace')[-3000:]}")

        try:
            with httpx.Client(base_url=url, timeout=300) as http:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        if http.get("/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline or server.poll() is not None:
                        fail("the server did not start")
                    time.sleep(0.2)
                t0 = time.perf_counter()
                tokens = [http.post("/auth/exchange", json={"code": c}).json()["token"] for c in codes]
                signin_ms = (time.perf_counter() - t0) * 1000 / len(codes)

                # Offsets on a grid inside the imagery, one per submission.
                half_lon = math.sqrt(FIELD_HA * 1e4) / (111_320 * math.cos(math.radians((south + north) / 2))) / 2
                half_lat = math.sqrt(FIELD_HA * 1e4) / 111_320 / 2
                centres = [(west + half_lon + (east - west - 2 * half_lon) * ((i * 0.618) % 1),
                            south + half_lat + (north - south - 2 * half_lat) * ((i * 0.382 + 0.1) % 1))
                           for i in range(n_farmers)]

                def submit(i: int) -> tuple[float, str]:
                    body = _square(*centres[i], FIELD_HA)
                    start = time.perf_counter()
                    r = http.post(f"/borrowers/farmer-b{i:03d}/claims", json=body,
                                  headers={"Authorization": f"Bearer {tokens[i]}"})
                    elapsed = (time.perf_counter() - start) * 1000
                    if r.status_code != 201:
                        fail(f"submission {i} answered {r.status_code}: {r.text[:300]}")
                    return elapsed, r.json()[0]["status"]

                first_ms, _ = submit(0)  # cold: loads the models, segments the reference tile
                warm = [submit(1 + i) for i in range(args.rounds)]
                base = 1 + args.rounds
                with ThreadPoolExecutor(args.concurrent) as pool:
                    t0 = time.perf_counter()
                    burst = list(pool.map(submit, range(base, base + args.concurrent)))
                    burst_wall_s = time.perf_counter() - t0

                # Map tiles over the imagery, zooms 13-17, 6 connections like a browser.
                wanted = []
                for z in range(13, 18):
                    (x0, y0), (x1, y1) = _xyz(west, north, z), _xyz(east, south, z)
                    wanted += [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]

                def tile(job: tuple[int, tuple[int, int, int]]) -> int:
                    i, (z, x, y) = job
                    r = http.get(f"/map/tiles/{z}/{x}/{y}.png", headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"})
                    if r.status_code != 200:
                        fail(f"tile {z}/{x}/{y} answered {r.status_code}: {r.text[:200]}")
                    return len(r.content)

                rates: list[float] = []
                for _ in range(0 if args.no_tiles else 2):  # rendered, then from the LRU cache
                    with ThreadPoolExecutor(6) as pool:
                        t0 = time.perf_counter()
                        sizes = list(pool.map(tile, enumerate(wanted)))
                        rates.append(len(sizes) / (time.perf_counter() - t0))
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()
    statuses: dict[str, int] = {}
    for _, status in warm + burst:
        statuses[status] = statuses.get(status, 0) + 1
    warm_ms = [ms for ms, _ in warm]
    burst_ms = [ms for ms, _ in burst]
    result = {
        "field_mu": 2000, "field_ha": round(FIELD_HA, 1), "rounds": args.rounds, "concurrent": args.concurrent,
        "first_submission_ms": round(first_ms), "p50_ms": round(statistics.median(warm_ms)),
        "p95_ms": round(_pct(warm_ms, 0.95)), "p50_ms_concurrent20": round(statistics.median(burst_ms)),
        "p95_ms_concurrent20": round(_pct(burst_ms, 0.95)), "concurrent_wall_s": round(burst_wall_s, 2),
        "signin_ms": round(signin_ms, 1), "statuses": statuses, "map_tiles": len(wanted),
        "map_tiles_per_s": round(rates[0], 1) if rates else None,
        "map_tiles_per_s_cached": round(rates[1], 1) if rates else None,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
