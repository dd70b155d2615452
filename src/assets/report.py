"""`assets report portfolio`: one self-contained HTML file for the credit committee.

Inline SVG only (no scripts, no external files, so it opens offline and from e-mail): a map of the
fields coloured by status, distributions of value and limit, exposure by crop and region, the
limits that changed since the last night started (and the claims and reviews after it) and why, and open alerts. Every text from
the database is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from assets.store import connect
from assets.store.credit import exposure_by, field_rows, portfolio_summary
from assets.store.history import limit_changes_since, previous_run_started
from assets.store.queries import alerts

COLOURS = {"verified": "#2e7d32", "partial": "#f9a825", "review": "#1565c0", "rejected": "#c62828",
           "submitted": "#757575"}
MAP_W, MAP_H = 720, 480


def _e(x: Any) -> str:
    return html.escape("-" if x is None else str(x))


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


DRAW_ORDER = {"rejected": 0, "submitted": 1, "review": 2, "partial": 3, "verified": 4}  # later is drawn on top


def _map_svg(fields: Sequence[dict[str, Any]]) -> str:
    """Fields as polygons in an equirectangular view (north up) of the fields the bank may lend
    against; a rejected drawing far away (a field outside the imagery) would otherwise shrink the
    portfolio to a corner. Rejected fields outside that view are counted under the map."""
    import shapely

    shapes = [(f, shapely.from_wkb(bytes(f["geom_wkb"]))) for f in fields if f.get("geom_wkb") is not None]
    if not shapes:
        return "<p>No field has a usable drawing yet.</p>"
    framed = [g for f, g in shapes if f["status"] != "rejected"] or [g for _, g in shapes]
    minx, miny, maxx, maxy = shapely.GeometryCollection(framed).bounds
    view = shapely.box(minx, miny, maxx, maxy)
    outside = sum(1 for _, g in shapes if not g.intersects(view))
    kx = math.cos(math.radians((miny + maxy) / 2))  # degrees of longitude are shorter away from the equator
    span = max((maxx - minx) * kx, maxy - miny, 1e-6)
    scale = min(MAP_W, MAP_H) / span * 0.95

    def pt(x: float, y: float) -> str:
        return f"{(x - minx) * kx * scale + 10:.1f},{(maxy - y) * scale + 10:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="map of fields by status" '
             f'width="{MAP_W + 20}" height="{MAP_H + 20}" class="map"><rect width="100%" height="100%" fill="#f4f1ea"/>']
    # accepted fields on top: a rejected copy of a field must not hide the verified field beneath it
    for f, g in sorted(shapes, key=lambda fg: DRAW_ORDER.get(fg[0]["status"], 1)):
        for poly in getattr(g, "geoms", [g]):
            if poly.geom_type != "Polygon":
                continue
            ring = " ".join(pt(x, y) for x, y, *_ in poly.exterior.coords)  # fields stored with altitudes too
            colour = COLOURS.get(f["status"], "#757575")
            parts.append(f'<polygon class="field status-{_e(f["status"])}" points="{ring}" fill="{colour}" '
                         f'fill-opacity="0.7" stroke="#222" stroke-width="0.5"><title>{_e(f["name"])} '
                         f'({_e(f["borrower_id"])}): {_e(f["status"])}, limit {_money(f["limit_cny"])} CNY</title></polygon>')
    parts.append("</svg>")
    legend = " ".join(f'<span class="key" style="background:{c}"></span>{s}' for s, c in COLOURS.items())
    note = (f'<p id="outside">{outside} rejected field{"s lie" if outside > 1 else " lies"} outside this view.</p>'
            if outside else "")
    return "".join(parts) + f'<p class="legend">{legend}</p>' + note


def _histogram_svg(values: Sequence[float], label: str, bins: int = 12) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return f"<p>No {label} yet.</p>"
    lo, hi = min(values), max(values)
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    top, w, h = max(counts), 360, 160
    bars = "".join(f'<rect x="{i * w / bins:.1f}" y="{h - c / top * h:.1f}" width="{w / bins - 2:.1f}" '
                   f'height="{c / top * h:.1f}" fill="#455a64"><title>{_money(lo + i * width)}-'
                   f'{_money(lo + (i + 1) * width)} CNY: {c}</title></rect>' for i, c in enumerate(counts))
    return (f'<figure><svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_e(label)} distribution" '
            f'width="{w}" height="{h + 4}" class="hist">{bars}</svg><figcaption>{_e(label)}: {len(values)} fields, '
            f'{_money(lo)} to {_money(hi)} CNY</figcaption></figure>')


def _cell(value: Any, money: bool) -> str:
    """A table cell: money to the yuan and other floats to two decimals, numbers right-aligned, text left."""
    if money:
        return f'<td class="n">{_money(value)}</td>'
    if isinstance(value, float):
        return f'<td class="n">{value:,.2f}</td>'
    if isinstance(value, int):
        return f'<td class="n">{value:,}</td>'
    return f"<td>{_e(value)}</td>"


def _table(rows: Sequence[dict[str, Any]], cols: Sequence[tuple[str, str]], money: set[str] = set()) -> str:  # noqa: B006  (only read)
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{_e(h)}</th>" for _, h in cols)
    body = "".join("<tr>" + "".join(_cell(r[c], c in money) for c, _ in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _why(change: dict[str, Any]) -> str:
    reasons = []
    if change["previous_limit_cny"] is None:
        reasons.append("first decision")
    if change["previous_params_version"] not in (None, change["params_version"]):
        reasons.append(f"parameters {change['previous_params_version']} -> {change['params_version']}")
    if change["previous_crop_model"] not in (None, change["crop_model_version"]):
        reasons.append(f"crop model {change['previous_crop_model']} -> {change['crop_model_version']}")
    officers = [r["message"] for r in change.get("reasons") or []
                if isinstance(r, dict) and r.get("code") in ("review_approved", "review_rejected")]
    if officers:  # the officer's decision is the why, not the haircuts it leaves in place
        return "; ".join(reasons + officers)
    steps = [s["text"] for s in change["explanation"] or [] if s.get("step", "").startswith(("haircut", "no_limit"))]
    return "; ".join(reasons + steps) or "new imagery or sensor evidence"


def render(con) -> str:
    """The report's HTML from an open store connection."""
    summary = portfolio_summary(con)
    fields = field_rows(con)
    since = previous_run_started(con)
    changes = limit_changes_since(con, since)
    names = {f["claim_id"]: f["name"] for f in fields}
    for c in changes:
        c["why"] = _why(c)
        c["name"] = names.get(c["claim_id"])
        c["change_cny"] = c["limit_cny"] - (c["previous_limit_cny"] or 0)
    css = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0}"
           "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}td.n{text-align:right}"
           ".key{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle}"
           ".cards span{display:inline-block;margin-right:2em}figure{display:inline-block;margin:0 2em 0 0}")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Portfolio report</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<style>{css}</style></head><body>
<h1>Portfolio report</h1><p>Generated {now}.</p>
<p class="cards" id="summary"><span>Borrowers <b>{summary['borrowers'] or 0:,}</b></span>
<span>Limit <b id="total-limit">{_money(summary['limit_cny'] or 0)}</b> CNY</span>
<span>Value low / expected / high <b>{_money(summary['value_low_cny'] or 0)} / {_money(summary['value_cny'] or 0)} /
{_money(summary['value_high_cny'] or 0)}</b> CNY</span><span>Rejected fields <b>{summary['rejected'] or 0:,}</b></span></p>
<h2>Fields by status</h2>{_map_svg(fields)}
<h2>Distributions</h2>{_histogram_svg([f['value_cny'] for f in fields if f['value_cny']], 'expected value')}
{_histogram_svg([f['limit_cny'] for f in fields if f['limit_cny']], 'limit')}
<h2>Exposure by crop</h2>{_table(exposure_by(con, 'crop'), [('crop', 'crop'), ('fields', 'fields'), ('area_ha', 'area ha'),
                                                             ('value_cny', 'value CNY'), ('limit_cny', 'limit CNY')],
                                 {'value_cny', 'limit_cny'})}
<h2>Exposure by region</h2>{_table(exposure_by(con, 'region'), [('region', 'region'), ('fields', 'fields'),
                                                                 ('value_cny', 'value CNY'), ('limit_cny', 'limit CNY')],
                                   {'value_cny', 'limit_cny'})}
<h2>Limits changed since the last night{f' (started {since:%Y-%m-%d %H:%M}; claims and reviews after it included)' if since else ''}</h2>
<div id="changes">{_table(changes, [('borrower_id', 'borrower'), ('name', 'field'), ('claim_id', 'claim'),
                                   ('previous_limit_cny', 'was'),
                                   ('limit_cny', 'now'), ('change_cny', 'change'), ('why', 'why')],
                          {'previous_limit_cny', 'limit_cny', 'change_cny'})}</div>
<h2>Alerts</h2><div id="alerts">{_table(alerts(con, limit=100), [('as_of', 'as of'), ('kind', 'kind'),
                                                          ('borrower_id', 'borrower'), ('about', 'field / device'),
                                                          ('message', 'message')])}</div>
</body></html>
"""


def portfolio_report(db_path: Path, out: Path) -> Path:
    """Write the report for the store at ``db_path`` to ``out``; returns ``out``."""
    with connect(db_path, read_only=True) as con:
        text = render(con)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
