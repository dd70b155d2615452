"""Plain-text, JSON and CSV renderings of query results for the terminal."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from datetime import date, datetime
from typing import Any, Sequence

from assets.exports import spreadsheet_safe


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, datetime):  # to the second in a table (JSON and CSV keep the microseconds)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return printable(str(value))


def printable(text: str) -> str:
    """Control characters shown as escapes (``\\x1b``, ``\\n``): text stored before submissions refused
    them must not move the officer's cursor, clear the screen or start a fake row."""
    if text.isprintable():
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in _CONTROL else ch
                   for ch in text)


_CONTROL = ("Cc", "Cf", "Zl", "Zp")  # controls, format (bidi) marks, line and paragraph breaks; a full-width space stays


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A fixed-width text table; long text in the last column is not truncated."""
    headers = list(headers or columns)
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    widths[-1] = len(headers[-1])
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=_default)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    for r in rows:
        writer.writerow({k: spreadsheet_safe(json.dumps(v, default=_default) if isinstance(v, (list, dict)) else v)
                         for k, v in r.items()})
    return buf.getvalue()
