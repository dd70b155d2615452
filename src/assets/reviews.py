"""The review queue: claims whose boundary follows no detected field wait for a credit officer.

A `review` verdict gets no limit. An officer approves or rejects it with a note; the decision is
stored (who, why, when, and the reasons they saw) and the claim is assessed again at once with
the same imagery: approved, it is valued at its verified area like any other claim; rejected, it
stays rejected, also on every later night. CLI and API both call `decide`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from assets.config import Settings
from assets.errors import InputError, NotFoundError
from assets.store import reviews as store
from assets.store import users, writer

DECISIONS = ("approve", "reject")


@dataclass(frozen=True)
class Decision:
    claim_id: str
    decision: str  # approve | reject
    note: str
    decided_by: str
    channel: str = "cli"  # cli | api
    verdict: str | None = None  # the verification_id the officer looked at: refused if the claim was assessed since


def queue(settings: Settings) -> list[dict[str, Any]]:
    """Claims waiting for a decision, oldest first."""
    with writer.read(settings.db_path) as con:
        return store.review_queue(con)


def check(decision: Decision, settings: Settings) -> Decision:
    """The decision, or an `InputError` naming what to fix."""
    if decision.decision not in DECISIONS:
        raise InputError(f"decision {decision.decision!r} is not one of {', '.join(DECISIONS)}")
    note = (decision.note or "").strip()
    if not note:
        raise InputError("a review decision needs a note saying why (--note \"...\"); it is shown to the borrower")
    if len(note) > settings.note_max_chars:
        raise InputError(f"the note has {len(note)} characters; keep it under {settings.note_max_chars}")
    if not (decision.decided_by or "").strip():
        raise InputError("say who decides (the officer's user name)")
    return Decision(decision.claim_id, decision.decision, note, decision.decided_by.strip(), decision.channel,
                    decision.verdict)


@writer.write_op
def record_review(con: Any, *, claim_id: str, decision: str, note: str, decided_by: str, channel: str,
                  now: datetime, verdict: str | None = None) -> dict[str, Any]:
    """Check the claim waits for review and store the decision (one write transaction); returns the
    verdict it was decided on.

    An approval answers the questions of the verdict it is stored with: given ``verdict`` (the
    verification the officer looked at), a claim assessed again meanwhile (a night with stale
    imagery, a new contest) is refused, so no question is answered unseen. ``decided_by`` may not
    be a registered user of another role (a farmer approving their own claim)."""
    other = next((u for u in users.users_like(con, decided_by) if u.role != "officer"), None)
    if other is not None:  # `--officer Wang` is the farmer `wang` too
        raise InputError(f"{decided_by!r} is the registered {other.role} user {other.user_name!r}, not an officer; "
                         "only officers decide reviews (--officer NAME, or `assets users add NAME --role officer`)")
    current = store.claim_verdict(con, claim_id)
    if current is None:
        raise NotFoundError(f"no claim {claim_id!r}; list the claims waiting for review with `assets claims review` "
                            "or GET /reviews")
    if current["status"] != "review":
        raise InputError(f"claim {claim_id} is {current['status']}, not waiting for review; only claims waiting "
                         "for review (`assets claims review`, GET /reviews) can be approved or rejected")
    if verdict is not None and verdict != current["verification_id"]:
        asks = ", ".join(str(r.get("code")) for r in current.get("reasons") or [] if isinstance(r, dict))
        raise InputError(f"claim {claim_id} was assessed again since you looked (its verdict now asks about: {asks}); "
                         "look at it again (`assets claims review`, GET /reviews) and decide on what it asks now")
    review_id = "rv-" + hashlib.sha256(f"{claim_id}|{now.isoformat()}|{decided_by}".encode()).hexdigest()[:16]
    store.record_decision(con, {
        "review_id": review_id, "claim_id": claim_id, "borrower_id": current["borrower_id"],
        "verification_id": current["verification_id"], "decision": decision, "note": note,
        "decided_by": decided_by, "channel": channel, "decided_at": now, "reasons": current.get("reasons") or []})
    if channel == "cli":  # the API's middleware audits its own requests
        users.record_audit(con, [{"at": now, "user_name": decided_by, "role": "cli", "action": f"claims review --{decision}",
                                  "target": claim_id}])
    return {**current, "review_id": review_id}


@writer.write_op
def withdraw_review(con: Any, *, claim_id: str, review_id: str) -> bool:
    """Take back a decision whose re-assessment failed, while the claim still waits for review (so the
    officer can decide again); a claim already re-assessed keeps it. True when it was taken back."""
    current = store.claim_verdict(con, claim_id)
    if current is None or current["status"] != "review":
        return False
    store.delete_decision(con, review_id)
    return True


def decide(settings: Settings, decision: Decision, models: Any | None = None) -> dict[str, Any]:
    """Store an officer's decision on a claim in review and assess the claim again; returns its
    new `claim_status` row. Only a claim whose current verdict is `review` can be decided."""
    from assets.pipeline import assess_claims, claim_rows, load_models

    decision = check(decision, settings)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    current = writer.call(settings.db_path, record_review, claim_id=decision.claim_id, decision=decision.decision,
                          note=decision.note, decided_by=decision.decided_by, channel=decision.channel, now=now,
                          verdict=decision.verdict)
    as_of = current["as_of"] if isinstance(current["as_of"], date) else settings.today()
    try:  # an approval of contested land awards it: `assess_claims` assesses the loose holder with it
        assess_claims(settings.db_path, as_of=as_of, settings=settings, models=models or load_models(settings),
                      claim_ids=[decision.claim_id], kind="review")
    except BaseException:  # a decision the claim was never re-assessed on is not kept: decide again
        writer.call(settings.db_path, withdraw_review, claim_id=decision.claim_id, review_id=current["review_id"])
        raise
    return claim_rows(settings.db_path, [decision.claim_id])[0]
