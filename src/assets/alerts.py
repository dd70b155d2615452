"""Alert lifecycle: which alerts are open, and resolving one with a note.

The nightly job raises alerts (`monitor`, `sensors.evidence`); what is *open* is the store's
`alerts_open` view: the newest alert per field or device and kind, a silent sensor until it reports
again. Operations or a credit officer close the rest by hand once dealt with (a field inspected, a
probe recalibrated; a night that raises no drought may only lack the readings to judge), with a
note saying what was done; who, when and why are kept. A condition still there on a later night
raises a new alert. CLI (`assets alerts resolve`) and API (POST /alerts/{id}/resolve) call `resolve`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from assets.config import Settings
from assets.errors import InputError, NotFoundError
from assets.store import alerts as store
from assets.store import users, writer
from assets.store.db import require_database


@dataclass(frozen=True)
class Resolution:
    alert_id: str
    note: str
    resolved_by: str
    channel: str = "cli"  # cli | api


def check(resolution: Resolution, settings: Settings) -> Resolution:
    """The resolution with its note trimmed, or an `InputError` naming what to fix."""
    note = (resolution.note or "").strip()
    if not note:
        raise InputError('resolving an alert needs a note saying what was done (--note "probe recalibrated")')
    if len(note) > settings.note_max_chars:
        raise InputError(f"the note has {len(note)} characters; keep it under {settings.note_max_chars}")
    who = (resolution.resolved_by or "").strip()
    if not who:
        raise InputError("say who resolves the alert (a user name)")
    return Resolution(resolution.alert_id.strip(), note, who, resolution.channel)


@writer.write_op
def record_resolution(con: Any, *, alert_id: str, note: str, resolved_by: str, channel: str,
                      now: datetime) -> dict[str, Any]:
    """Check the alert exists and is open, then store who closed it and why (one transaction)."""
    state = store.alert_state(con, alert_id)
    if state is None:
        raise NotFoundError(f"no alert {alert_id!r}; list the open ones with `assets query alerts` or GET /alerts")
    if state["resolved_by"] is not None:
        raise InputError(f"alert {alert_id} was already resolved by {state['resolved_by']} on "
                         f"{state['resolved_at']:%Y-%m-%d %H:%M} ({state['resolution_note']})")
    if not state["open"]:
        raise InputError(f"alert {alert_id} is no longer open (a newer alert of its field or device replaced it, "
                         "or the condition cleared); list the open ones with `assets query alerts`")
    store.record_resolution(con, {"alert_id": alert_id, "resolved_by": resolved_by, "channel": channel,
                                  "resolved_at": now, "note": note})
    if channel == "cli":  # the API's middleware audits its own requests
        users.record_audit(con, [{"at": now, "user_name": resolved_by, "role": "cli", "action": "alerts resolve",
                                  "target": alert_id}])
    return {**state, "open": False, "resolved_by": resolved_by, "resolved_at": now, "resolution_note": note}


def resolve(settings: Settings, resolution: Resolution) -> dict[str, Any]:
    """Close an open alert with a note; returns the alert with who resolved it, when and why."""
    r = check(resolution, settings)
    require_database(settings.db_path)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return writer.call(settings.db_path, record_resolution, alert_id=r.alert_id, note=r.note,
                       resolved_by=r.resolved_by, channel=r.channel, now=now)
