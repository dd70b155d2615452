"""Sensors without a broker: message schema, registry, batch store, evidence, alerts, CLI, sample data."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from shapely.geometry import Point, box

from assets.cli import main as cli_main
from assets.errors import NotFoundError, SensorError
from assets.sensors.evidence import alerts, field_evidence
from assets.sensors.ingest import store_batch
from assets.sensors.registry import (
    Device,
    check_secret,
    list_devices,
    register_device,
    register_devices_file,
    retire_device,
)
from assets.sensors.replay import read_messages
from assets.sensors.schema import (
    MAX_PAYLOAD_BYTES,
    DeviceStatus,
    Reading,
    Reject,
    make_payload,
    topic_for,
    validate,
)
from assets.store.db import append, connect
from assets.store.sensors import count_alerts

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_tiles" / "sensors"
NOW = datetime(2024, 6, 1, 12, 0)
DEVICES = {"probe-001": DeviceStatus(), "probe-002": DeviceStatus()}


def msg(device: str = "probe-001", seq: int = 1, ts: str = "2024-06-01T10:00:00Z", **over: object) -> bytes:
    doc: dict[str, object] = {
        "device_id": device,
        "seq": seq,
        "ts": ts,
        "readings": {"soil_moisture": {"value": 21.5, "unit": "%"}, "soil_temperature": {"value": 18.0, "unit": "C"}},
    }
    doc.update(over)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


# --- schema -------------------------------------------------------------------------------

def test_valid_message_is_parsed_with_canonical_units() -> None:
    payload = msg(readings={"soil_moisture": {"value": 0.25, "unit": "m3/m3"}, "air_temperature": {"value": 68, "unit": "F"},
                            "air_pressure": {"value": 29.9, "unit": "inHg"}}, ts="2024-06-01T12:00:00+02:00")
    result = validate(topic_for("probe-001"), payload, DEVICES, NOW)
    assert isinstance(result, Reading)
    assert (result.device_id, result.seq, result.ts) == ("probe-001", 1, datetime(2024, 6, 1, 10, 0))
    soil, _, air, pressure, _ = result.values
    assert soil == pytest.approx(25.0) and air == pytest.approx(20.0) and pressure == pytest.approx(1012.5, abs=0.1)


def test_make_payload_round_trips() -> None:
    payload = make_payload("probe-002", 7, datetime(2016, 9, 1, 0, 15), {"soil_moisture": (14.25, "%"), "battery": (3.3, "V")})
    result = validate(topic_for("probe-002"), payload, DEVICES, NOW)
    assert isinstance(result, Reading)
    assert result.seq == 7 and result.ts == datetime(2016, 9, 1, 0, 15)
    assert result.values[0] == 14.25 and result.values[4] == 3.3


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        ("farms/probe-001/readings", b"not json {", "not_json"),
        ("farms/probe-001/readings", b"\xff\xfe\x00", "not_json"),
        ("farms/probe-001/readings", b"[1, 2]", "not_object"),
        ("farms/probe-001/readings", msg(seq=...), "missing_field"),
        ("farms/probe-001/readings", msg(readings=...), "missing_field"),
        ("farms/probe-001/readings", msg(seq="12"), "wrong_type"),
        ("farms/probe-001/readings", msg(seq=1.5), "wrong_type"),
        ("farms/probe-001/readings", msg(seq=True), "wrong_type"),
        ("farms/probe-001/readings", msg(seq=-1), "out_of_range"),
        ("farms/probe-001/readings", msg(ts=1717236000), "wrong_type"),
        ("farms/probe-001/readings", msg(ts="2024-06-01T10:00:00"), "bad_timestamp"),
        ("farms/probe-001/readings", msg(ts="yesterday"), "bad_timestamp"),
        ("farms/probe-001/readings", msg(ts="2024-06-01T10:00:400Z"), "bad_timestamp"),  # not 10:00:40
        ("farms/probe-001/readings", msg(ts="2024-06-01T10:00:00]Z"), "bad_timestamp"),
        ("farms/probe-001/readings", msg(ts="2024-06-01T10:00:00:00+01:00"), "bad_timestamp"),
        ("farms/probe-001/readings", msg(ts="1970-01-01T00:00:00Z"), "bad_timestamp"),
        ("farms/probe-001/readings", msg(ts="2024-06-02T12:00:00Z"), "future_timestamp"),
        ("farms/probe-001/readings", msg(readings={}), "wrong_type"),
        ("farms/probe-001/readings", msg(readings={"soil_moisture": 21}), "wrong_type"),
        ("farms/probe-001/readings", msg(readings={"soil_moisture": {"value": "wet", "unit": "%"}}), "wrong_type"),
        ("farms/probe-001/readings", msg(readings={"soil_moisture": {"value": 140, "unit": "%"}}), "out_of_range"),
        ("farms/probe-001/readings", msg(readings={"soil_temperature": {"value": -80, "unit": "C"}}), "out_of_range"),
        ("farms/probe-001/readings", msg(readings={"soil_moisture": {"value": 20, "unit": "kg"}}), "bad_unit"),
        ("farms/probe-001/readings", msg(readings={"radiation": {"value": 1, "unit": "Sv"}}), "unknown_quantity"),
        ("farms/ghost-001/readings", msg(device="ghost-001"), "unknown_device"),
        ("farms/probe-001/readings", msg(device="probe-002"), "topic_mismatch"),
        ("farms/probe-001/readings", msg(device_id=42), "wrong_type"),
        ("farms/probe-001/other", msg(), "bad_topic"),
        ("farms/probe-001/readings", b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", "oversize"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(topic: str, payload: bytes, code: str) -> None:
    result = validate(topic, payload, DEVICES, NOW)
    assert isinstance(result, Reject), result
    assert result.code == code
    assert result.reason


def test_retired_device_is_refused_after_retirement_only() -> None:
    devices = {"probe-001": DeviceStatus(retired_at=datetime(2024, 6, 1, 9, 0))}
    assert isinstance(validate(topic_for("probe-001"), msg(ts="2024-06-01T08:00:00Z"), devices, NOW), Reading)
    late = validate(topic_for("probe-001"), msg(), devices, NOW)
    assert isinstance(late, Reject) and late.code == "retired_device"


# --- registry -----------------------------------------------------------------------------

def test_registry_add_is_idempotent_conflicts_are_errors_and_retire(tmp_path: Path) -> None:
    with connect(tmp_path / "db.duckdb") as con:
        dev = Device("probe-001", "farmer-001", "soil_probe", 9.25, 56.36)
        assert register_device(con, dev, "s3cret") is True
        assert register_device(con, dev, "s3cret", exist_ok=True) is False
        with pytest.raises(SensorError, match="already registered"):
            register_device(con, Device("probe-001", "farmer-002", "soil_probe", 9.25, 56.36), exist_ok=True)
        with pytest.raises(SensorError, match="not allowed"):
            register_device(con, Device("bad/id", "farmer-001", "soil_probe", 9.25, 56.36))
        with pytest.raises(SensorError, match="reserved"):
            register_device(con, Device("ingester", "farmer-001", "soil_probe", 9.25, 56.36))
        with pytest.raises(SensorError, match="longitude first"):
            register_device(con, Device("probe-009", "farmer-001", "soil_probe", 56.36, 99.0))
        stored = con.execute("SELECT secret_hash FROM sensor_devices").fetchall()[0][0]
        assert "s3cret" not in stored and check_secret("s3cret", stored) and not check_secret("guess", stored)
        retired = retire_device(con, "probe-001", datetime(2024, 1, 1))
        assert retired.retired_at == datetime(2024, 1, 1)
        with pytest.raises(SensorError, match="already retired"):
            retire_device(con, "probe-001")
        with pytest.raises(NotFoundError):
            retire_device(con, "probe-404")


def test_a_device_for_a_look_alike_borrower_or_far_from_the_fields_is_refused(tmp_path: Path) -> None:
    """One spelling per borrower, and a device stands in its borrower's fields: swapped or mistyped
    coordinates are refused with the distance, once the borrower has drawn fields."""
    from assets.config import Settings
    from assets.pipeline import register_claims

    db = tmp_path / "db.duckdb"
    with connect(db) as con:
        with pytest.raises(SensorError, match="look-alike characters"):
            register_device(con, Device("probe-010", "farmer-00\uff11", "soil_probe", 9.25, 56.36))
        # no fields yet: nothing to measure against, so the place is taken as given
        assert register_device(con, Device("probe-011", "farmer-001", "soil_probe", 56.36, 9.25)) is True
    register_claims(db, REPO / "sample_tiles/claims/farmer-001.geojson", "farmer-001", Settings(db_path=db))
    with connect(db) as con:
        with pytest.raises(SensorError, match=r"is [\d,]+ km from the nearest of farmer-001's fields.*longitude first"):
            register_device(con, Device("probe-012", "farmer-001", "soil_probe", 56.36, 9.25))  # lon and lat swapped
        assert register_device(con, Device("probe-013", "farmer-001", "soil_probe", 9.25, 56.36)) is True
        assert {d.device_id for d in list_devices(con)} == {"probe-011", "probe-013"}


def test_devices_file_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "devices.json"
    bad.write_text('[{"device_id": "probe-001"}]')
    with connect(tmp_path / "db.duckdb") as con:
        with pytest.raises(SensorError, match="needs device_id, borrower_id, lon, lat"):
            register_devices_file(con, bad)
        bad.write_text("{not json")
        with pytest.raises(SensorError, match="not readable JSON"):
            register_devices_file(con, bad)
        assert list_devices(con) == []


# --- batch store ----------------------------------------------------------------------------

def _register(con, *ids: str) -> None:  # type: ignore[no-untyped-def]
    for i, device_id in enumerate(ids):
        register_device(con, Device(device_id, f"farmer-{i + 1:03d}", "soil_probe", 9.25 + i / 100, 56.36))


def test_store_batch_dedupes_accepts_out_of_order_and_quarantines(tmp_path: Path) -> None:
    with connect(tmp_path / "db.duckdb") as con:
        _register(con, "probe-001", "probe-002")
        topic = topic_for("probe-001")
        batch = [(topic, msg(seq=s, ts=f"2024-06-01T0{s}:00:00Z")) for s in (3, 1, 2, 2)]  # out of order + a repeat
        batch += [(topic, b"garbage"), (topic_for("probe-002"), msg(device="probe-001", seq=9))]
        first = store_batch(con, batch, now=NOW)
        assert (first.stored, first.duplicates, first.quarantined) == (3, 1, 2)
        assert first.reasons == {"not_json": 1, "topic_mismatch": 1}
        again = store_batch(con, batch, now=NOW)  # a redelivery of everything
        assert (again.stored, again.duplicates) == (0, 4)
        rows = con.execute("SELECT seq, ts FROM sensor_readings ORDER BY seq").fetchall()
        assert [r[0] for r in rows] == [1, 2, 3] and rows[0][1] == datetime(2024, 6, 1, 1, 0)
        quarantined = con.execute("SELECT reason_code, payload, device_id FROM sensor_quarantine ORDER BY 1").fetchall()
        assert [q[0] for q in quarantined] == ["not_json", "topic_mismatch"]  # kept once, with the payload
        assert quarantined[0][1] == b"garbage"


def test_a_reused_seq_with_another_time_is_quarantined_not_lost(tmp_path: Path) -> None:
    """A probe whose counter restarted (or next month's log numbered from 1 again): the same
    (device, seq) with a new time used to count as a duplicate and vanish."""
    with connect(tmp_path / "db.duckdb") as con:
        _register(con, "probe-001")
        topic = topic_for("probe-001")
        store_batch(con, [(topic, msg(seq=s, ts=f"2024-06-01T0{s}:00:00Z")) for s in (1, 2)], now=NOW)
        restarted = [(topic, msg(seq=1, ts="2024-06-01T01:00:00Z")),  # a true redelivery
                     (topic, msg(seq=2, ts="2024-06-01T09:00:00Z"))]  # seq 2 again, hours later
        r = store_batch(con, restarted, now=NOW)
        assert (r.stored, r.duplicates, r.quarantined) == (0, 1, 1) and r.reasons == {"seq_conflict": 1}
        (reason,) = con.execute("SELECT reason FROM sensor_quarantine WHERE reason_code = 'seq_conflict'").fetchone()
        assert "seq 2 again with another time (2024-06-01 09:00:00; stored 2024-06-01 02:00:00)" in reason


# --- evidence and alerts ------------------------------------------------------------------

def _load_sample(con) -> None:  # type: ignore[no-untyped-def]
    register_devices_file(con, SAMPLE / "devices.json")
    messages, skipped = read_messages(SAMPLE / "readings.csv")
    assert skipped == 0
    store_batch(con, [(m.topic, m.payload) for m in messages])


def store_alerts(con, rows: list[dict]) -> int:  # type: ignore[no-untyped-def]
    """Store alert rows as an assessment's write step does (`pipeline._write_steps`: appended, the ones
    already stored ignored); how many were new."""
    before = count_alerts(con)
    append(con, "alerts", rows, on_conflict="ignore")
    return count_alerts(con) - before


def _around(lon: float, lat: float, d: float = 0.001):  # type: ignore[no-untyped-def]
    return box(lon - d, lat - d, lon + d, lat + d)


def test_field_evidence_on_the_sample_season(tmp_path: Path) -> None:
    devices = {d["device_id"]: d for d in json.loads((SAMPLE / "devices.json").read_text())}
    with connect(tmp_path / "db.duckdb") as con:
        _load_sample(con)
        as_of = date(2016, 9, 30)
        p1, p2, p3 = (devices[f"probe-00{i}"] for i in (1, 2, 3))
        ok = field_evidence(con, "farmer-001", _around(p1["lon"], p1["lat"]), as_of, 24.0)
        assert ok.status == "corroborated" and ok.device_ids == ("probe-001",)
        assert ok.last_seen == datetime(2016, 9, 30, 23, 45) and ok.in_range_fraction == 1.0
        json.dumps(ok.to_dict())
        dry = field_evidence(con, "farmer-002", _around(p2["lon"], p2["lat"]), as_of, 24.0)
        assert dry.status == "corroborated" and dry.soil_moisture_anomaly_z is not None and dry.soil_moisture_anomaly_z < -2
        silent = field_evidence(con, "farmer-003", _around(p3["lon"], p3["lat"]), as_of, 24.0)
        assert silent.status == "silent" and silent.last_seen == datetime(2016, 9, 19, 23, 45)
        # The threshold is the parameters' (the silence alerts use it too): 12 days of leeway, not silent.
        lenient = field_evidence(con, "farmer-003", _around(p3["lon"], p3["lat"]), as_of, 24.0 * 12)
        assert lenient.status != "silent"
        # Before the silence the same probe corroborates.
        assert field_evidence(con, "farmer-003", _around(p3["lon"], p3["lat"]), date(2016, 9, 15), 24.0).status == "corroborated"
        # Another borrower's field, or a field the device is not in: no devices.
        assert field_evidence(con, "farmer-002", _around(p1["lon"], p1["lat"]), as_of, 24.0).status == "no_devices"
        elsewhere = field_evidence(con, "farmer-001", _around(p1["lon"] + 0.1, p1["lat"]), as_of, 24.0)
        assert elsewhere.status == "no_devices" and elsewhere.outside_device_ids == ("probe-001",)
        # A retired device is not evidence.
        retire_device(con, "probe-001", datetime(2016, 9, 25))
        assert field_evidence(con, "farmer-001", _around(p1["lon"], p1["lat"]), as_of, 24.0).status == "no_devices"


def test_stuck_or_implausible_probe_is_flagged(tmp_path: Path) -> None:
    with connect(tmp_path / "db.duckdb") as con:
        _register(con, "probe-001", "probe-002")  # farmer-001 at (9.25, 56.36), farmer-002 at (9.26, 56.36)
        start = datetime(2016, 9, 21)
        batch = [
            (topic_for(d), make_payload(d, i, start + timedelta(hours=i), {"soil_moisture": (value, "%")}))
            for d, value in (("probe-001", 1.0), ("probe-002", 20.0))
            for i in range(24 * 10)
        ]
        store_batch(con, batch)
        dry_air = field_evidence(con, "farmer-001", Point(9.25, 56.36).buffer(0.001), date(2016, 9, 30), 24.0)
        assert dry_air.status == "implausible" and "plausible" in dry_air.message
        stuck = field_evidence(con, "farmer-002", Point(9.26, 56.36).buffer(0.001), date(2016, 9, 30), 24.0)
        assert stuck.status == "implausible" and "stuck" in stuck.message


def test_alerts_silence_and_drought_are_deterministic(tmp_path: Path) -> None:
    with connect(tmp_path / "db.duckdb") as con:
        _load_sample(con)
        rows = alerts(con, date(2016, 9, 30))
        kinds = {(r["kind"], r["device_id"]) for r in rows}
        assert kinds == {("sensor_silent", "probe-003"), ("drought", "probe-002")}
        assert store_alerts(con, rows) == 2
        assert store_alerts(con, alerts(con, date(2016, 9, 30))) == 0  # re-run: nothing new
        # The same silence seen the next night is the same alert.
        next_night = [r for r in alerts(con, date(2016, 10, 1)) if r["kind"] == "sensor_silent" and r["device_id"] == "probe-003"]
        assert next_night[0]["alert_id"] == [r for r in rows if r["kind"] == "sensor_silent"][0]["alert_id"]
        assert json.loads(rows[0]["details"])["device_id"]
        assert alerts(con, date(2016, 9, 10)) == []  # all quiet mid-month


def test_a_silent_sensor_alert_closes_when_the_device_reports_again(tmp_path: Path) -> None:
    """Alerts are stored once; a silent probe's alert stays open only while the probe stays silent."""
    from assets.store.queries import alerts as open_alerts

    with connect(tmp_path / "db.duckdb") as con:
        _load_sample(con)
        store_alerts(con, alerts(con, date(2016, 9, 30)))
        assert {(a["kind"], a["device_id"]) for a in open_alerts(con)} == {("sensor_silent", "probe-003"),
                                                                          ("drought", "probe-002")}
        # a reading that arrives late, timed before the as-of day but after the silence began, closes it too
        con.execute("INSERT INTO sensor_readings (device_id, seq, ts, received_at, soil_moisture_pct) "
                    "VALUES ('probe-003', 999999, TIMESTAMP '2016-09-29 06:00', TIMESTAMP '2016-10-02 06:01', 30.0)")
        assert {(a["kind"], a["device_id"]) for a in open_alerts(con)} == {("drought", "probe-002")}
        assert con.execute("SELECT count(*) FROM alerts").fetchone()[0] == 2  # kept, only no longer open
        assert [r[0] for r in con.execute("SELECT kind FROM alerts_open").fetchall()] == ["drought"]


# --- CLI --------------------------------------------------------------------------------

def test_cli_devices_add_list_retire_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "db.duckdb")
    assert cli_main(["sensors", "devices", "add", "probe-010", "--borrower", "farmer-010", "--lon", "9.2",
                     "--lat", "56.3", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "registered probe-010" in out and "secret" in out
    assert "note: farmer-010 has no fields yet" in out  # an officer learns a mistyped borrower id at once
    for cmd in (["sensors", "devices", "list"], ["sensors", "quarantine"]):  # a mistyped --db creates nothing
        assert cli_main([*cmd, "--db", str(tmp_path / "typo.duckdb")]) == 2
        assert "no database at" in capsys.readouterr().err and not (tmp_path / "typo.duckdb").exists()
    assert cli_main(["sensors", "devices", "import", str(SAMPLE / "devices.json"), "--db", db]) == 0
    assert cli_main(["sensors", "devices", "import", str(SAMPLE / "devices.json"), "--db", db]) == 0
    assert "0 new devices" in capsys.readouterr().out
    assert cli_main(["sensors", "devices", "retire", "probe-010", "--at", "2024-01-01", "--db", db]) == 0
    capsys.readouterr()
    assert cli_main(["sensors", "devices", "list", "--format", "json", "--db", db]) == 0
    listed = {d["device_id"]: d for d in json.loads(capsys.readouterr().out)}
    assert set(listed) == {"probe-001", "probe-002", "probe-003", "probe-010"}
    assert listed["probe-010"]["retired_at"] == "2024-01-01T00:00:00"
    # Bad input: one line, exit status 2, nothing stored.
    assert cli_main(["sensors", "devices", "add", "x/y", "--borrower", "b", "--lon", "1", "--lat", "1", "--db", db]) == 2
    assert "error:" in capsys.readouterr().err
    assert cli_main(["sensors", "replay", str(tmp_path / "missing.csv"), "--broker", "mqtt://127.0.0.1:1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["sensors", "ingest", "--broker", "http://x", "--db", db]) == 2


# --- replay input and the sample file ----------------------------------------------------

def test_replay_reads_other_logs_with_column_options(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    with log.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Timestamp", "Farm_ID", "Volumetric_Moisture_Pct", "Atm_Pressure_inHg", "Hour"])
        w.writerow(["2025-01-05 00:00:00", "Farm_1", "14.15", "30.02", "0"])
        w.writerow(["2025-01-05 00:15:00", "Farm_1", "", "", "0"])  # nothing to send
        w.writerow(["2025-01-05 00:15:00", "Farm_2", "12.0", "29.9", "0"])
    messages, skipped = read_messages(log, device_column="Farm_ID", time_column="Timestamp")
    assert skipped == 1 and [(m.device_id, m.seq) for m in messages] == [("Farm_1", 1), ("Farm_2", 1)]
    reading = validate(messages[0].topic, messages[0].payload, None, datetime(2025, 6, 1))
    assert isinstance(reading, Reading) and reading.values[3] == pytest.approx(1016.6, abs=0.1)
    with pytest.raises(Exception, match="--device-column"):
        read_messages(log)


def test_sample_readings_file_is_small_and_has_the_scripted_events() -> None:
    path = SAMPLE / "readings.csv"
    assert path.stat().st_size < 1_000_000
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    last = {}
    for r in rows:
        last[r["device_id"]] = max(last.get(r["device_id"], ""), r["ts"])
    assert last == {"probe-001": "2016-09-30T23:45:00Z", "probe-002": "2016-09-30T23:45:00Z",
                    "probe-003": "2016-09-19T23:45:00Z"}
    assert min(r["ts"] for r in rows) == "2016-09-01T00:00:00Z"


def test_sample_generator_measures_the_real_log(shared_data: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_sample_sensors", REPO / "scripts" / "make_sample_sensors.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    stats = module.measure(shared_data / "iot" / "ecoirrigate_kolkata_2025.csv")
    assert 5 < stats["soil_moisture_pct"]["mean"] < 30  # the log's probes, not our Danish levels
    assert 900 < stats["air_pressure_hpa"]["mean"] < 1100  # converted from inHg
    assert stats["air_temp_c"]["noise"] > 0 and len(stats["air_temp_c"]["profile"]) == 24


def test_process_writer_commits_like_the_thread_writer_and_lets_go(tmp_path: Path) -> None:
    from assets.sensors.writer import BatchWriter, ProcessWriter

    db = tmp_path / "db.duckdb"
    with connect(db) as con:
        _register(con, "probe-001")
    batch = [(topic_for("probe-001"), msg(seq=s, ts=f"2024-06-01T0{s}:00:00Z")) for s in (1, 2, 2)] + [("farms/x", b"{}")]
    writer = ProcessWriter(db)
    try:
        first = writer.commit(batch, more_waiting=False)
        again = writer.commit(batch, more_waiting=False)
    finally:
        writer.close()
    assert (first.stored, first.duplicates, first.quarantined) == (2, 1, 1)
    assert (again.stored, again.duplicates) == (0, 3)
    local = BatchWriter(db)
    try:
        assert local.commit(batch).stored == 0  # the child closed the file: this process can write
    finally:
        local.close()


# --- the fast path agrees with the general one ----------------------------------------------

def _corpus() -> list[tuple[str, bytes]]:
    """Valid messages and the ways a device (or a forger) can bend them: each must get the same
    verdict from the typed fast path as from the general validator."""
    import random

    t = topic_for("probe-001")
    base = msg()
    good = (b'{"device_id":"probe-001","seq":5,"ts":"2024-06-01T10:00:00Z",'
            b'"readings":{"soil_moisture":{"value":21.5,"unit":"%"},"battery":{"value":3,"unit":"V"}}}')
    cases: list[tuple[str, bytes]] = [(t, base), (t, good), (t, json.dumps(json.loads(good), indent=2).encode())]
    swaps = [
        (b'"seq":5', b'"seq":5,"seq":6'), (b'"seq":5', b'"seq":6,"seq":5'), (b'"seq":5', b'"seq":5.0'),
        (b'"seq":5', b'"seq":5e0'), (b'"seq":5', b'"seq":-0'), (b'"seq":5', b'"seq":9223372036854775808'),
        (b'"seq":5', b'"seq":18446744073709551616'), (b'"seq":5', b'"seq":true'), (b'"seq":5', b'"seq":null'),
        (b'"device_id":"probe-001"', b'"device_id":"probe\\u002d001"'),
        (b'"device_id":"probe-001"', b'"device_id":"probe-001","device_id":"probe-002"'),
        (b'"device_id":"probe-001"', b'"device_id":"probe-002","device_id":"probe-001"'),
        (b'"value":21.5', b'"value":21.5,"value":140'), (b'"value":21.5', b'"value":140,"value":21.5'),
        (b'"value":21.5', b'"value":NaN'), (b'"value":21.5', b'"value":Infinity'), (b'"value":21.5', b'"value":1e400'),
        (b'"value":21.5', b'"value":true'), (b'"value":21.5', b'"value":"21.5"'), (b'"value":21.5', b'"value":null'),
        (b'"value":21.5', b'"value":100'), (b'"value":21.5', b'"value":100.0000001'), (b'"value":21.5', b'"value":-0.0'),
        (b'"value":3', b'"value":10' + b"0" * 30), (b'"unit":"%"', b'"unit":"m3/m3"'), (b'"unit":"%"', b'"unit":1'),
        (b'"unit":"%"', b'"unit":"%","unit":"kg"'), (b'"unit":"%"', b'"unit":"%","extra":1'), (b'"unit":"%"', b'"unit":"\\u0025"'),
        (b',"unit":"%"', b''), (b'"soil_moisture"', b'"radiation"'), (b'"soil_moisture"', b'"soil_moisture\\u0000"'),
        (b'"battery":{"value":3,"unit":"V"}', b'"battery":null'), (b'"battery":{"value":3,"unit":"V"}', b'"battery":{}'),
        (b'"battery":{"value":3,"unit":"V"}', b'"battery":{"value":3,"unit":"V"},"battery":{"value":99,"unit":"V"}'),
        (b'"battery":{"value":3,"unit":"V"}', b'"battery":{"value":3,"unit":"V"},'), (b'}}}', b',}}}'), (b'}}}', b'},}}'),
        (b'}}}', b'}}},'), (b'}}}', b'}}} '), (b'}}}', b'}}}x'), (b'}}}', b'}},"readings":{}}'), (b'}}}', b'}},"extra":[1,]}'),
        (b'}}}', b'}},"extra":{"seq":1}}'), (b'"readings":{', b'"readings":{},"readings":{'),
    ]
    for ts in ["2024-06-01T10:00:00+00:00", "2024-06-01T10:00:00z", "2024-06-01T10:00:00.5Z", "2024-06-01T23:59:60Z",
               "2024-06-01T24:00:00Z", "2024-02-30T10:00:00Z", "1999-12-31T23:59:59Z", "2000-01-01T00:00:00Z",
               "2024-06-01T12:10:00Z", "2024-06-01T12:10:01Z", "2024-06-01 10:00:00Z", "2024-6-01T10:00:00ZZ", "20240601T100000Z",
               "2024-06-01T10:00:00+14:00", "２024-06-01T10:00:00Z", ""]:
        swaps.append((b'"ts":"2024-06-01T10:00:00Z"', b'"ts":' + json.dumps(ts).encode()))
    cases += [(t, good.replace(a, b, 1)) for a, b in swaps]
    for topic in ["farms/probe-001/readings/x", "farms//readings", "farms/probe-002/readings", "farm/probe-001/readings",
                  "farms/probe-001/readings "]:
        cases.append((topic, good))
    slash = good.replace(b'"probe-001"', b'"a/b"')
    cases.append(("farms/a/b/readings", slash))
    rng = random.Random(7)  # byte-level mutations of a valid message
    alphabet = b'{}[],:"\\ 0123456789.eE-+tnulfaseNI%CV'
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(data))
            op = rng.random()
            if op < 0.4:
                data[i:i + 1] = b""
            elif op < 0.8:
                data[i:i] = bytes([rng.choice(alphabet)])
            else:
                j = min(len(data), i + rng.randint(1, 12))
                data[i:i] = data[i:j]
        cases.append((t, bytes(data)))
    return cases


def test_fast_path_agrees_with_the_general_validator() -> None:
    from assets.sensors import schema

    devices = {**DEVICES, "a/b": DeviceStatus(), "retired-1": DeviceStatus(retired_at=datetime(2024, 6, 1, 9, 0))}
    corpus = _corpus()
    corpus += [(topic_for("retired-1"), msg(device="retired-1", ts=ts)) for ts in ("2024-06-01T08:59:59Z", "2024-06-01T09:00:00Z")]
    accepted = 0
    for topic, payload in corpus:
        general = schema._validate_general(topic, payload, devices, NOW)
        for registry in (devices, None):
            fast = schema._validate_fast(topic, payload, registry, NOW)
            expected = general if registry is devices else schema._validate_general(topic, payload, None, NOW)
            if fast is not None:
                assert fast == expected, (topic, payload)
                assert [type(v) for v in fast.values] == [type(v) for v in expected.values], payload  # type: ignore[union-attr]
                accepted += 1
        assert validate(topic, payload, devices, NOW) == general
    # It must also take the common case, or it is no fast path: every valid message without string
    # escapes and with a ...T10:00:00Z timestamp (what make_payload and the probes send).
    import re

    canonical = re.compile(rb'"ts": ?"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"')
    valid = [(tp, p) for tp, p in corpus if isinstance(schema._validate_general(tp, p, devices, NOW), Reading)]
    common = [(tp, p) for tp, p in valid if b"\\" not in p and canonical.search(p)]
    missed = [p for tp, p in common if schema._validate_fast(tp, p, devices, NOW) is None]
    assert not missed and len(common) > 30 and accepted >= 2 * len(common)


def test_a_silent_device_that_is_sending_refused_messages_is_not_blamed_on_its_power(tmp_path: Path) -> None:
    """Ops QA 2026-12-08: a probe whose counter restarted after a reboot had every reading quarantined as
    seq_conflict; its alert said "check the device and its power" while it reported 960 times."""
    with connect(tmp_path / "db.duckdb") as con:
        _load_sample(con)
        (silent,) = [r for r in alerts(con, date(2016, 9, 30)) if r["kind"] == "sensor_silent"]
        assert silent["message"].endswith("check the device and its power")
        con.execute("INSERT INTO sensor_quarantine (quarantine_id, received_at, topic, device_id, reason_code, reason, "
                    "payload_size) SELECT 'q' || i, TIMESTAMP '2030-01-01' + INTERVAL (i) MINUTE, "
                    "'farms/probe-003/readings', 'probe-003', 'seq_conflict', 'sent seq 1 again', 10 FROM range(3) t(i)")
        (silent,) = [r for r in alerts(con, date(2016, 9, 30)) if r["kind"] == "sensor_silent"]
        assert "it is sending, but its messages since were refused (3 seq_conflict)" in silent["message"]
        assert "counter restarted" in silent["message"] and "power" not in silent["message"]
