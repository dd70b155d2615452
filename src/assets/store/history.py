"""Named reads and writes of the decision log: point-in-time limits and their hash chain.

Decisions are appended, never updated: each row carries the sha256 of the previous row
(`prev_hash`) and its own (`row_hash`, over every other column), so a value, limit or input edited
with plain SQL no longer matches its hash, and a deleted row breaks the link to the next one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable, Mapping, Sequence

import duckdb
import numpy as np
import pyarrow as pa

from assets.errors import NotFoundError
from assets.store.db import append, records
from assets.store.writer import write_op

GENESIS = "0" * 64
JSON_COLUMNS = ("tiles", "sensor_window", "inputs", "reasons", "explanation")
# Hashed, in this order; row_hash itself is not.
HASHED = ("decision_seq", "decision_id", "claim_id", "borrower_id", "run_id", "verification_id", "valuation_id",
          "valid_from", "recorded_at", "status", "crop", "area_ha", "value_low_cny", "value_cny", "value_high_cny",
          "limit_cny", "params_version", "params_sha256", "seg_model_version", "crop_model_version", *JSON_COLUMNS,
          "prev_hash")


def _canon(value: Any) -> str:
    if value is None:
        return "\x00"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if not isinstance(value, str) and not isinstance(value, int):
        return json.dumps(value, sort_keys=True, default=str)  # a JSON column offered as a Python object
    return str(value)


DOUBLES = ("area_ha", "value_low_cny", "value_cny", "value_high_cny", "limit_cny")


def _num(key: str, value: Any) -> Any:
    """DOUBLE columns read back as floats: hash 100 and 100.0 alike."""
    return float(value) if key in DOUBLES and value is not None else value


def content_digest(row: Mapping[str, Any]) -> str:
    """sha256 over a decision's own columns, in `HASHED` order (JSON columns as the text stored,
    which DuckDB keeps byte for byte). Independent of the previous row, so bulk writers can compute
    it in parallel."""
    text = "\x1e".join(f"{k}\x1f{_canon(_num(k, row.get(k)))}" for k in HASHED if k != "prev_hash")
    return hashlib.sha256(text.encode()).hexdigest()


def link(prev_hash: str, digest: str) -> str:
    """The chain step: a row's hash binds the previous row's hash to its own content."""
    return hashlib.sha256((prev_hash + digest).encode()).hexdigest()


def row_hash(row: Mapping[str, Any]) -> str:
    return link(str(row.get("prev_hash")), content_digest(row))


def chain_head(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """(last decision_seq, its row_hash); (0, GENESIS) for an empty log."""
    row = con.execute("SELECT decision_seq, row_hash FROM decisions ORDER BY decision_seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


@write_op
def record_params(con: duckdb.DuckDBPyConnection, sha256: str, version: str, text: str, now: datetime) -> None:
    """Keep the parameter file a decision used (by content), so it can be recomputed later."""
    append(con, "valuation_params", [{"params_sha256": sha256, "params_version": version, "params_toml": text,
                                      "first_used_at": now}], on_conflict="ignore")


def params_text(con: duckdb.DuckDBPyConnection, sha256: str) -> str:
    row = con.execute("SELECT params_toml FROM valuation_params WHERE params_sha256 = ?", [sha256]).fetchone()
    if row is None:
        raise NotFoundError(f"parameters {sha256[:12]} are not stored; the decision cannot be recomputed")
    return str(row[0])


@write_op
def append_decisions(con: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Chain and append decisions not yet recorded (same decision_id: kept once). Returns rows added.

    Call inside the writer's transaction: the chain head read and the append are one unit.
    """
    if not rows:
        return 0
    ids = [r["decision_id"] for r in rows]
    known = {r[0] for r in con.execute("SELECT decision_id FROM decisions WHERE list_contains(?, decision_id)",
                                       [ids]).fetchall()}
    seq, prev = chain_head(con)
    out: list[dict[str, Any]] = []
    for r in rows:
        if r["decision_id"] in known:
            continue
        known.add(r["decision_id"])
        seq += 1
        row = {**{k: r.get(k) for k in HASHED if k not in ("decision_seq", "prev_hash")},
               "decision_seq": seq, "prev_hash": prev}
        for k in JSON_COLUMNS:
            if row[k] is not None and not isinstance(row[k], str):
                row[k] = json.dumps(row[k], sort_keys=True, default=str)
        row["row_hash"] = prev = row_hash(row)
        out.append(row)
    added = append(con, "decisions", out)
    if out:
        advance_current(con, out[0]["decision_seq"])
    return added


# The columns of `current_decisions` (migration 014), each a column of `decisions`.
CURRENT_COLUMNS = ("claim_id", "decision_seq", "decision_id", "borrower_id", "verification_id", "valuation_id",
                   "valid_from", "recorded_at", "status", "crop", "area_ha", "value_low_cny", "value_cny",
                   "value_high_cny", "limit_cny", "params_version", "seg_model_version", "crop_model_version",
                   "reasons")


def advance_current(con: duckdb.DuckDBPyConnection, first_seq: int, *,
                    changed: Sequence[str] | None = None) -> None:
    """Bring `current_decisions` up to date with the decisions numbered ``first_seq`` and later (just
    appended, same transaction): per claim, the newest of them by evidence date then sequence
    replaces the stored row unless that one has a later evidence date; a claim seen for the first
    time gets its row. ``changed``: the only columns that can differ from the stored row, and at
    most one new decision per claim (a revaluation, which copies the rest from the current row)."""
    cols = ", ".join(CURRENT_COLUMNS)
    newest = "" if changed is not None else (
        "QUALIFY row_number() OVER (PARTITION BY claim_id ORDER BY valid_from DESC, decision_seq DESC) = 1")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _cd_new AS SELECT {cols} FROM decisions WHERE decision_seq >= ? {newest}",
                [first_seq])
    sets = ", ".join(f"{c} = n.{c}" for c in CURRENT_COLUMNS if c != "claim_id" and (changed is None or c in changed))
    con.execute(f"UPDATE current_decisions AS c SET {sets} FROM _cd_new n "
                "WHERE c.claim_id = n.claim_id AND n.valid_from >= c.valid_from")
    con.execute(f"INSERT INTO current_decisions ({cols}) SELECT {cols} FROM _cd_new n "
                "WHERE NOT EXISTS (SELECT 1 FROM current_decisions c WHERE c.claim_id = n.claim_id)")
    con.execute("DROP TABLE _cd_new")


def rebuild_current(con: duckdb.DuckDBPyConnection) -> int:
    """Recompute `current_decisions` from the whole log (bulk loaders, repairs). Returns its rows."""
    cols = ", ".join(CURRENT_COLUMNS)
    con.execute("DELETE FROM current_decisions")
    con.execute(f"INSERT INTO current_decisions ({cols}) SELECT {cols} FROM decisions QUALIFY row_number() OVER "
                "(PARTITION BY claim_id ORDER BY valid_from DESC, decision_seq DESC) = 1")
    return int(con.execute("SELECT count(*) FROM current_decisions").fetchone()[0])  # type: ignore[index]  # count(*): one row


def chain_links(prev_hash: str, digests: Sequence[str]) -> list[str]:
    """Each row's hash in turn (`link`), starting after ``prev_hash``."""
    out, sha = [], hashlib.sha256
    for d in digests:
        prev_hash = sha((prev_hash + d).encode()).hexdigest()
        out.append(prev_hash)
    return out


_INPUT_SPEC = json.dumps({"status": "VARCHAR", "verified_area_ha": "DOUBLE", "claimed_area_ha": "DOUBLE",
                          "crop": "VARCHAR", "sensor_status": "VARCHAR", "reason_codes": ["VARCHAR"],
                          "usable_dates": "INTEGER", "centre_lon": "DOUBLE", "centre_lat": "DOUBLE",
                          "crop_probs": "MAP(VARCHAR, DOUBLE)", "ndvi_season": [["VARCHAR"]]})  # one parse per input
# The columns a revaluation copies from the decision it replaces (`d`, joined by decision_seq).
_CARRIED = ("claim_id", "borrower_id", "verification_id", "valuation_id", "status", "crop", "area_ha",
            "seg_model_version", "crop_model_version", "tiles", "sensor_window", "inputs", "reasons")


def stage_current_inputs(con: duckdb.DuckDBPyConnection, decision_id_suffix: str) -> pa.Table:
    """Stage every valued field's current decision in a temporary table (``rv_stage``: row ``i`` in
    borrower then claim order, the per-borrower cap's order; ``src_seq`` the decision) and return its
    valuation inputs parsed into columns (``in_*``), in no particular row order (``i`` gives it: DuckDB
    does not sort the wide rows). DuckDB reads the JSON numbers exactly as Python's ``json`` does and
    ``in_crop_probs`` keeps each object's key order. The new decision id is ``rv-`` + the first 20
    hex digits of sha256(claim_id + suffix)."""
    con.execute(  # narrow: the current-state rows name each decision; the wide columns are joined by decision_seq
        "CREATE OR REPLACE TEMP TABLE rv_stage AS SELECT (row_number() OVER (ORDER BY borrower_id, claim_id)) - 1 AS i, "
        "src_seq, 'rv-' || left(sha256(claim_id || ?), 20) AS decision_id FROM (SELECT c.decision_seq AS src_seq, "
        "c.claim_id, c.borrower_id FROM current_decisions c JOIN decisions d ON d.decision_seq = c.decision_seq "
        "WHERE d.inputs IS NOT NULL)", [decision_id_suffix])
    table = con.sql(
        "SELECT i, claim_id, borrower_id, area_ha, j.status AS in_status, j.verified_area_ha AS in_verified_area_ha, "
        "j.claimed_area_ha AS in_claimed_area_ha, j.crop AS in_crop, j.sensor_status AS in_sensor_status, "
        "j.reason_codes AS in_reason_codes, j.usable_dates AS in_usable_dates, j.centre_lon AS in_centre_lon, "
        "j.centre_lat AS in_centre_lat, j.crop_probs AS in_crop_probs, "
        "list_transform(coalesce(j.ndvi_season, []), lambda x: x[1]::DATE) AS in_ndvi_dates, "
        "list_transform(coalesce(j.ndvi_season, []), lambda x: x[2]::DOUBLE) AS in_ndvi "
        f"FROM (SELECT s.i, d.claim_id, d.borrower_id, d.area_ha, json_transform(d.inputs, '{_INPUT_SPEC}') AS j "
        "FROM rv_stage s JOIN decisions d ON d.decision_seq = s.src_seq)").to_arrow_table()
    return table


def drop_stage(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP TABLE IF EXISTS rv_stage")


def _canon_sql(constants: Mapping[str, Any], first_seq: int, constants_explanation: str,
               python_reprs: bool = False) -> tuple[str, list[Any]]:
    """SQL for `content_digest`'s text over ``rv_stage s``, the decision it replaces ``d`` and the new
    values ``v``: the same bytes Python hashes. A DOUBLE is DuckDB's ``CAST(x AS VARCHAR)``, the
    shortest round-trip text, which is Python's ``repr`` (checked on every run by
    `duckdb_floats_match_repr`); with ``python_reprs`` it is Python's own ``repr`` text, passed in
    ``v.<column>_repr``. One flat ``concat``: a chain of ``||`` copies the growing string each time."""
    items: list[str] = []
    params: list[Any] = []
    for n, k in enumerate(k for k in HASHED if k != "prev_hash"):
        sep = "\x1e" if n else ""
        if k in constants:
            items.append("?")
            params.append(f"{sep}{k}\x1f" + _canon(_num(k, constants[k])))
            continue
        items.append("?")
        params.append(f"{sep}{k}\x1f")
        if k == "decision_seq":
            items.append("CAST(s.i + ? AS VARCHAR)")
            params.append(first_seq)
        else:
            double = (f"v.{k}_repr" if python_reprs else
                      f"coalesce(CAST({'d' if k == 'area_ha' else 'v'}.{k} AS VARCHAR), chr(0))")
            items.append(double if k in DOUBLES else "coalesce(v.explanation, ?)" if k == "explanation"
                         else "s.decision_id" if k == "decision_id" else f"coalesce(CAST(d.{k} AS VARCHAR), chr(0))")
            if k == "explanation":
                params.append(constants_explanation)
    return f"concat({', '.join(items)})", params


def append_staged(con: duckdb.DuckDBPyConnection, values: pa.Table, constants: Mapping[str, Any],
                  explanation: str) -> int:
    """Append one decision per ``rv_stage`` row with the new ``values`` (columns i, value_low_cny,
    value_cny, value_high_cny, limit_cny, explanation (NULL: ``explanation``, the run's common one)),
    numbered and chained after the current head: DuckDB computes each row's content digest, Python
    links them in order. Call inside the writer's transaction; drops ``rv_stage``."""
    seq0, prev = chain_head(con)
    python_reprs = not duckdb_floats_match_repr(con, values)
    if python_reprs:  # a DuckDB whose float text differs from Python's: hash Python's own text
        values = _with_python_reprs(con, values)
    text, params = _canon_sql(constants, seq0 + 1, explanation, python_reprs)  # decision_seq = seq0 + 1 + i
    _rv_values = values
    # DuckDB joins the text, Python hashes it (hashlib is several times faster than DuckDB's sha256 here);
    # fetched in any order with i, so DuckDB never sorts the wide texts
    got = con.execute(f"SELECT i, encode({text}) AS t FROM rv_stage s JOIN decisions d ON d.decision_seq = s.src_seq "
                      "JOIN _rv_values v USING (i)", params).fetchnumpy()
    sha = hashlib.sha256
    digests = [sha(t).hexdigest() for t in got["t"].tolist()]
    order = np.argsort(np.asarray(got["i"], dtype=np.int64), kind="stable").tolist()
    del got
    digests = [digests[k] for k in order]
    hashes = chain_links(prev, digests)
    _rv_hashes = pa.table({"i": pa.array(np.arange(len(hashes), dtype=np.int64)), "prev_hash": pa.array([prev, *hashes[:-1]]),
                           "row_hash": pa.array(hashes)})
    carried = ", ".join(f"d.{c}" for c in _CARRIED if c != "area_ha")
    consts = list(constants)
    con.execute(
        f"INSERT INTO decisions (decision_seq, decision_id, {', '.join(c for c in _CARRIED if c != 'area_ha')}, "
        f"area_ha, value_low_cny, value_cny, value_high_cny, limit_cny, explanation, {', '.join(consts)}, prev_hash, "
        f"row_hash) SELECT s.i + ?, s.decision_id, {carried}, d.area_ha, v.value_low_cny, v.value_cny, "
        f"v.value_high_cny, v.limit_cny, coalesce(v.explanation, ?), {', '.join('?' for _ in consts)}, h.prev_hash, "
        "h.row_hash "
        "FROM rv_stage s JOIN decisions d ON d.decision_seq = s.src_seq JOIN _rv_values v USING (i) "
        "JOIN _rv_hashes h USING (i)",  # decision_seq is explicit: no need to sort the wide rows
        [seq0 + 1, explanation, *constants.values()])
    con.execute("DROP TABLE rv_stage")
    advance_current(con, seq0 + 1, changed=("decision_seq", "decision_id", "valid_from", "recorded_at",
                                            "value_low_cny", "value_cny", "value_high_cny", "limit_cny",
                                            "params_version"))
    return len(hashes)


# Values whose text is most likely to differ between two shortest round-trip printers: exponent
# switches (1e16, 1e-05), subnormals, extremes, negative zero, integers and CNY amounts.
_FLOAT_PROBES = (0.0, -0.0, 1.0, 100.0, 0.1, 1e-4, 1e-5, 0.00011, 1e15, 1e16, 1.5e16, 9999999999999998.0, 1e21, 1e22,
                 123456789.123, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 12345678901234567.0,
                 -2.5e-7, 1 / 3, 2 / 3, 56789.123456789)


def duckdb_floats_match_repr(con: duckdb.DuckDBPyConnection, values: pa.Table, sample: int = 2000) -> bool:
    """Whether DuckDB's ``CAST(DOUBLE AS VARCHAR)`` gives Python's ``repr`` on fixed probes, a spread
    sample of this run's new values and the carried areas (each hashed as text: a difference
    would make `verify_chain` flag every revalued row)."""
    cols = [c for c in ("value_low_cny", "value_cny", "value_high_cny", "limit_cny") if c in values.column_names]
    n = values.num_rows
    pick = np.unique(np.linspace(0, max(n - 1, 0), min(n, sample)).astype(np.int64)) if n else np.array([], np.int64)
    xs = list(_FLOAT_PROBES)
    for c in cols:
        xs.extend(float(x) for x in values.column(c).take(pa.array(pick)).to_pylist() if x is not None)
    xs.extend(float(r[0]) for r in con.execute(
        "SELECT d.area_ha FROM rv_stage s JOIN decisions d ON d.decision_seq = s.src_seq "
        "WHERE d.area_ha IS NOT NULL USING SAMPLE 500 ROWS").fetchall())
    _probe = pa.table({"x": pa.array(xs, pa.float64())})
    texts = con.execute("SELECT CAST(x AS VARCHAR) FROM _probe").fetchnumpy()
    return [str(t) for t in texts[next(iter(texts))].tolist()] == [repr(x) for x in xs]


def _with_python_reprs(con: duckdb.DuckDBPyConnection, values: pa.Table) -> pa.Table:
    """``values`` with ``<double>_repr`` columns: Python's repr of each new value and carried area."""
    def reprs(xs: list[Any]) -> pa.Array:
        return pa.array(["\x00" if x is None else repr(float(x)) for x in xs], pa.string())

    area = dict(con.execute("SELECT s.i, d.area_ha FROM rv_stage s JOIN decisions d ON d.decision_seq = s.src_seq")
                .fetchall())
    for k in ("value_low_cny", "value_cny", "value_high_cny", "limit_cny"):
        values = values.append_column(f"{k}_repr", reprs(values.column(k).to_pylist()))
    return values.append_column("area_ha_repr", reprs([area[i] for i in values.column("i").to_pylist()]))


@dataclass
class ChainCheck:
    rows: int
    head: str
    broken: list[dict[str, Any]] = field(default_factory=list)  # {decision_seq, decision_id, problem}

    @property
    def ok(self) -> bool:
        return not self.broken


def verify_chain(con: duckdb.DuckDBPyConnection, batch: int = 50_000) -> ChainCheck:
    """Recompute every row's hash and link, and compare the limit and value tables with the log."""
    cols = ", ".join(HASHED + ("row_hash",))
    cur = con.execute(f"SELECT {cols} FROM decisions ORDER BY decision_seq")
    names = [d[0] for d in cur.description]
    check, prev, expected_seq = ChainCheck(rows=0, head=GENESIS), GENESIS, 1
    while chunk := cur.fetchmany(batch):
        for values in chunk:
            row = dict(zip(names, values))
            check.rows += 1
            problems = []
            if row["decision_seq"] != expected_seq:
                problems.append(f"sequence jumps from {expected_seq - 1} to {row['decision_seq']} (rows deleted)")
            if row["prev_hash"] != prev:
                problems.append("prev_hash does not match the previous row (a row was deleted, inserted or re-hashed)")
            if row_hash(row) != row["row_hash"]:
                problems.append("row content does not match its hash (edited after it was recorded)")
            if problems:
                check.broken.append({"decision_seq": row["decision_seq"], "decision_id": row["decision_id"],
                                     "problem": "; ".join(problems)})
            prev, expected_seq = row["row_hash"], row["decision_seq"] + 1
    check.head = prev
    for r in records(con.execute(
            "SELECT d.decision_seq, d.decision_id, 'credit_limits.limit_cny ' || l.limit_cny || ' differs from the "
            "logged ' || d.limit_cny AS problem FROM decisions d JOIN credit_limits l ON l.limit_id = d.decision_id "
            "WHERE l.limit_cny IS DISTINCT FROM d.limit_cny "
            "UNION ALL SELECT d.decision_seq, d.decision_id, 'valuations.value_cny ' || a.value_cny || ' differs from "
            "the logged ' || d.value_cny FROM decisions d JOIN valuations a ON a.valuation_id = d.valuation_id "
            # the valuation's own decision (lim-X for val-X); a revaluation reuses the id with a new value
            "AND d.decision_id = 'lim-' || substr(a.valuation_id, 5) "
            "WHERE a.value_cny IS DISTINCT FROM d.value_cny ORDER BY 1")):
        check.broken.append(r)
    check.broken.extend(current_state_problems(con))
    check.broken.extend(review_problems(con))
    check.broken.extend(source_problems(con))
    return check


def source_problems(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Rows outside the chain that the credit views read, checked against what the chain holds: a
    claim moved to another borrower (its limit would follow it in the portfolio), a value range
    edited, a stored parameter file whose text no longer has the hash decisions name."""
    return records(con.execute(
        "SELECT NULL AS decision_seq, c.claim_id AS decision_id, 'claims.borrower_id of ' || c.claim_id || ' is ' || "
        "c.borrower_id || ' but its logged decisions name ' || any_value(d.borrower_id) AS problem "
        "FROM claims c JOIN decisions d USING (claim_id) WHERE d.borrower_id IS DISTINCT FROM c.borrower_id "
        "GROUP BY c.claim_id, c.borrower_id "
        "UNION ALL SELECT d.decision_seq, d.decision_id, 'valuations value range ' || a.value_low_cny || '-' || "
        "a.value_high_cny || ' differs from the logged ' || d.value_low_cny || '-' || d.value_high_cny FROM decisions d "
        "JOIN valuations a ON a.valuation_id = d.valuation_id AND d.decision_id = 'lim-' || substr(a.valuation_id, 5) "
        "WHERE a.value_low_cny IS DISTINCT FROM d.value_low_cny OR a.value_high_cny IS DISTINCT FROM d.value_high_cny "
        "UNION ALL SELECT NULL, p.params_sha256, 'valuation_params ' || p.params_version || ': its text does not hash "
        "to ' || left(p.params_sha256, 12) || ' (the parameter file was edited after use)' FROM valuation_params p "
        "WHERE sha256(p.params_toml) <> p.params_sha256 ORDER BY 1 NULLS FIRST"))


def review_problems(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Officers' decisions (`claim_reviews`, outside the hash chain) checked against the logged decisions,
    both ways: each approval or rejection is written into the next decision's reasons ("approved by
    credit officer li (...): note"), which the chain protects. A review row no logged decision records
    is an edited who or why; a logged officer decision no review row matches is a review deleted or
    turned round (a rejection edited into an approval, which the next night would otherwise obey)."""
    matches = ("(contains(x->>'message', 'by credit officer ' || r.decided_by || ' (')"
               " OR contains(x->>'message', 'by credit officer ' || r.decided_by || ': '))"
               " AND suffix(x->>'message', ': ' || r.note)"
               " AND x->>'code' = CASE r.decision WHEN 'approve' THEN 'review_approved' ELSE 'review_rejected' END")
    return records(con.execute(
        "SELECT decision_seq, decision_id, problem FROM ("
        "SELECT NULL AS decision_seq, r.review_id AS decision_id, 'claim_reviews ' || r.review_id || ' (' || r.decision "
        "|| ' by ' || r.decided_by || ') matches no logged decision of claim ' || r.claim_id || ': who or why was "
        "edited' AS problem, r.decided_at AS happened FROM claim_reviews r WHERE NOT EXISTS ("
        " SELECT 1 FROM decisions d, unnest(CAST(d.reasons AS JSON[])) AS t(x) WHERE d.claim_id = r.claim_id"
        f" AND {matches}) "
        "UNION ALL SELECT d.decision_seq, d.decision_id, 'decision ' || d.decision_seq || ' of claim ' || d.claim_id || "
        "' records an officer decision (' || (x->>'message') || ') that no review in claim_reviews matches: a review "
        "was deleted or edited' AS problem, d.recorded_at AS happened FROM decisions d, unnest(CAST(d.reasons AS JSON[])) "
        "AS t(x) WHERE x->>'code' IN ('review_approved', 'review_rejected') AND NOT EXISTS ("
        f" SELECT 1 FROM claim_reviews r WHERE r.claim_id = d.claim_id AND {matches})) ORDER BY happened"))


def current_state_problems(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Rows of `current_decisions` that are not the decision in force for their claim, differ from
    the decision they name, or are missing: the derived table must equal the log."""
    cols = [c for c in CURRENT_COLUMNS if c not in ("claim_id", "decision_seq")]
    differs = " OR ".join(f"c.{c} IS DISTINCT FROM d.{c}" for c in cols)
    return records(con.execute(
        "WITH newest AS (SELECT claim_id, decision_seq FROM decisions QUALIFY row_number() OVER (PARTITION BY "
        "claim_id ORDER BY valid_from DESC, decision_seq DESC) = 1) "
        "SELECT n.decision_seq, d.decision_id, 'current_decisions has no row for claim ' || n.claim_id AS problem "
        "FROM newest n JOIN decisions d USING (decision_seq) "
        "WHERE NOT EXISTS (SELECT 1 FROM current_decisions c WHERE c.claim_id = n.claim_id) "
        "UNION ALL SELECT c.decision_seq, c.decision_id, 'current_decisions names decision ' || c.decision_seq || "
        "' for claim ' || c.claim_id || ', not the one in force (' || coalesce(n.decision_seq::VARCHAR, 'none') || ')' "
        "FROM current_decisions c LEFT JOIN newest n USING (claim_id) WHERE n.decision_seq IS DISTINCT FROM "
        "c.decision_seq "
        "UNION ALL SELECT c.decision_seq, c.decision_id, 'current_decisions row of claim ' || c.claim_id || "
        "' differs from its decision' FROM current_decisions c JOIN decisions d USING (decision_seq) "
        f"WHERE c.claim_id IS DISTINCT FROM d.claim_id OR {differs} ORDER BY 1"))


def _parse(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        for k in JSON_COLUMNS:
            if isinstance(r.get(k), str):
                r[k] = json.loads(r[k])
        out.append(r)
    return out


def borrower_exists(con: duckdb.DuckDBPyConnection, borrower_id: str) -> bool:
    return con.execute("SELECT count(*) FROM borrowers WHERE borrower_id = ?",  # type: ignore[index]  # count(*): one row
                       [borrower_id]).fetchone()[0] > 0


def borrower_decisions(con: duckdb.DuckDBPyConnection, borrower_id: str,
                       known_at: datetime | None = None) -> list[dict[str, Any]]:
    """Every decision of a borrower recorded up to ``known_at`` (default: all), with valid_to, in chain order."""
    return _parse(records(con.execute(
        "SELECT d.*, lead(valid_from) OVER (PARTITION BY claim_id ORDER BY valid_from, decision_seq) AS valid_to "
        "FROM decisions d WHERE borrower_id = ? AND (CAST(? AS TIMESTAMP) IS NULL OR recorded_at <= ?) "
        "ORDER BY decision_seq", [borrower_id, known_at, known_at])))


def first_decision_date(con: duckdb.DuckDBPyConnection, borrower_id: str) -> date | None:
    row = con.execute("SELECT min(valid_from) FROM decisions WHERE borrower_id = ?", [borrower_id]).fetchone()
    return row[0] if row else None


def run_decisions(con: duckdb.DuckDBPyConnection, run_id: str, borrower_id: str) -> list[dict[str, Any]]:
    """A borrower's decisions made in one run: the group the per-borrower cap was applied over."""
    return _parse(records(con.execute("SELECT * FROM decisions WHERE run_id = ? AND borrower_id = ? "
                                       "ORDER BY decision_seq", [run_id, borrower_id])))


def borrower_history(con: duckdb.DuckDBPyConnection, borrower_id: str) -> list[dict[str, Any]]:
    """Every decision of a borrower in time order, with its validity period, the field's name and what changed."""
    return records(con.execute(
        "SELECT t.valid_from, t.valid_to, t.recorded_at, t.claim_id, c.name, t.status, t.crop, t.area_ha, "
        "t.value_low_cny, t.value_cny, t.value_high_cny, t.limit_cny, t.params_version, t.crop_model_version, "
        "t.seg_model_version, t.decision_id, t.limit_cny - lag(t.limit_cny) OVER (PARTITION BY t.claim_id "
        "ORDER BY t.valid_from, t.decision_seq) AS limit_change_cny "
        "FROM decision_timeline t LEFT JOIN claims c USING (claim_id) WHERE t.borrower_id = ? "
        "ORDER BY t.valid_from, t.decision_seq", [borrower_id]))


def limit_changes_since(con: duckdb.DuckDBPyConnection, since: datetime | None) -> list[dict[str, Any]]:
    """Current decisions recorded after ``since`` whose limit differs from the one they replaced."""
    return _parse(records(con.execute(
        "SELECT * FROM (SELECT borrower_id, claim_id, valid_from, recorded_at, limit_cny, params_version, "
        "crop_model_version, explanation, reasons, lag(limit_cny) OVER w AS previous_limit_cny, "
        "lag(params_version) OVER w AS previous_params_version, lag(crop_model_version) OVER w AS previous_crop_model, "
        "lead(valid_from) OVER w AS valid_to FROM decisions WINDOW w AS (PARTITION BY claim_id ORDER BY valid_from, "
        "decision_seq)) WHERE valid_to IS NULL AND (CAST(? AS TIMESTAMP) IS NULL OR recorded_at >= ?) "
        "AND previous_limit_cny IS DISTINCT FROM limit_cny "
        "AND NOT (previous_limit_cny IS NULL AND limit_cny = 0) ORDER BY abs(limit_cny - coalesce(previous_limit_cny, 0)) "
        "DESC LIMIT 200", [since, since])))


def previous_run_started(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the newest night (a nightly or demo run) started: "changed since the last night" starts
    there and takes in the claims submitted and reviews decided after it (each an assessment run of
    its own, so counting from the run before the newest one showed only the last single action)."""
    row = con.execute("SELECT started_at FROM ingest_runs WHERE status = 'ok' AND kind IN ('nightly', 'demo') "
                      "ORDER BY started_at DESC LIMIT 1").fetchone()
    return row[0] if row else None
