"""Claim verification: one pure function from evidence to a verdict with reasons as data.

Every face (demo, nightly flow, CLI, API) calls `verify_claim`; it reads nothing and writes
nothing, so the same evidence always gives the same verdict and the reasons can be shown to a
farmer or a credit committee verbatim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from assets import boundary as bnd
from assets.config import Settings
from assets.errors import InputError
from assets.fields.geometry import MU_PER_HA
from assets.models import legend

if TYPE_CHECKING:  # only the attributes are read; keeps verification free of torch/rasterio
    from assets.observe import ClaimObservation, DateObservation

# The boundary reasons an officer answers by looking at the drawing on the imagery: an approval of
# one settles the others (new imagery may word the same doubt differently).
BOUNDARY_QUESTIONS = ("boundary_mismatch", "boundary_unaligned", "mixed_seasons")


@dataclass(frozen=True)
class Reason:
    code: str
    message: str
    blocking: bool = False  # a blocking reason rejects the claim


@dataclass(frozen=True)
class ReviewDecision:
    """A credit officer's latest decision on a claim that was sent to review."""

    review_id: str
    decision: str  # approve | reject
    decided_by: str
    note: str
    reviewed: tuple[str, ...] = ()  # codes of the reasons the officers saw, over every approval
    # who approved each of those questions and why: {code: (decided_by, note)}; empty: this decision
    answered_by: dict[str, tuple[str, str]] = field(default_factory=dict)

    def settles(self, *codes: str) -> bool:
        """Whether an approval was given while an officer saw one of ``codes``: an approval answers
        the questions it was asked, not a later one (new imagery, another night)."""
        return self.decision == "approve" and any(c in self.reviewed for c in codes)

    def approval(self, about: str, *codes: str) -> "Reason":
        """The reason an approval leaves on the verdict, naming the officer who answered ``codes``;
        its wording is what `audit verify` matches against `claim_reviews` (`store.history.review_problems`)."""
        by, note = next((self.answered_by[c] for c in codes if c in self.answered_by), (self.decided_by, self.note))
        return Reason("review_approved", f"approved by credit officer {by} ({about}): {note}")


@dataclass
class Verification:
    claim_id: str
    status: str  # verified | partial | review (waits for a credit officer, no limit) | rejected
    reasons: list[Reason]
    claimed_area_ha: float
    farmland_area_ha: float = 0.0
    planted_area_ha: float = 0.0
    overlap_area_ha: float = 0.0
    verified_area_ha: float = 0.0
    crop: str | None = None
    crop_probability: float = 0.0
    cropland_probability: float = 0.0
    crop_probs: dict[str, float] = field(default_factory=dict)
    sensor_evidence: dict[str, Any] | None = None
    boundary: dict[str, Any] | None = None  # the drawing against the detected fields (`boundary.py`)

    @property
    def rejected(self) -> bool:
        return self.status == "rejected"

    def reasons_json(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.reasons]

    def summary(self) -> str:
        """The sentence shown next to a rejected or partial claim."""
        blocking = [r.message for r in self.reasons if r.blocking]
        return "; ".join(blocking or [r.message for r in self.reasons if r.code != "ok"]) or "verified"


def stale_imagery(usable: Sequence["DateObservation"], as_of: date | None, settings: Settings) -> str | None:
    """Why the newest clear image of a field is too old to speak for the season of ``as_of``, or None."""
    if as_of is None or settings.max_imagery_age_days is None or not usable:
        return None
    newest = max(d.observed_on for d in usable)
    age = (as_of - newest).days
    if age <= settings.max_imagery_age_days:
        return None
    return (f"the newest clear image of this field is from {newest}, {age:,} days before {as_of}: it shows an earlier "
            f"season, not this one (at most {settings.max_imagery_age_days} days); a credit officer will check the "
            "field, and it is checked again when new imagery arrives")


def declared_crop_reason(declared: str | None, crop: str | None, probability: float,
                         probs: dict[str, float], valued: bool = True) -> Reason | None:
    """What the imagery says of the crop the farmer declared, or None when it agrees (or none was
    declared). Never blocking: the value goes by the imagery, so declaring a dearer crop gains
    nothing, but a credit officer sees the disagreement."""
    if not declared or crop is None:
        return None
    try:
        said = legend.to_crop(declared)
    except InputError:
        return Reason("declared_crop_unknown", f"the declared crop {declared!r} is not one the platform knows; the "
                      "crop is taken from the imagery")
    if said == crop:
        return None
    shown = ", ".join(f"{c} {p:.0%}" for c, p in sorted(probs.items(), key=lambda kv: -kv[1])[:3])
    if crop == legend.UNKNOWN:
        return Reason("declared_crop_unconfirmed", f"the imagery cannot confirm the declared crop {said} "
                      f"({declared!r}; {said} {probs.get(said, 0.0):.0%}, likeliest: {shown})"
                      + ("; it is valued as an uncertain crop" if valued else ""))
    return Reason("declared_crop_differs", f"the farmer declared {said} ({declared!r}) but the imagery shows {crop} "
                  f"({probability:.0%}; {said} {probs.get(said, 0.0):.0%})"
                  + (f"; the field is valued as {crop}" if valued else ""))


def verify_claim(
    *,
    claim_id: str,
    claimed_area_ha: float,
    observation: "ClaimObservation",
    overlap_area_ha: float,
    contested_overlap_ha: float = 0.0,
    sensor_evidence: dict[str, Any] | None,
    settings: Settings,
    crop_failure: str | None = None,
    review: ReviewDecision | None = None,
    as_of: date | None = None,
    declared_crop: str | None = None,
    refused_before: str | None = None,
) -> Verification:
    """Decide whether the imagery, other claims and sensors support the claimed field.

    A drawing whose boundary follows no detected field, and a field whose newest clear image is
    older than `Settings.max_imagery_age_days` before ``as_of`` (it shows an earlier season), wait
    in `review` for a credit officer (``review`` is their latest decision on this claim: approved,
    it is valued like any other; rejected, it stays rejected).
    """
    v = Verification(claim_id=claim_id, status="verified", reasons=[], claimed_area_ha=claimed_area_ha,
                     overlap_area_ha=overlap_area_ha, sensor_evidence=sensor_evidence)
    if observation.coverage_fraction < settings.min_imagery_coverage:
        v.reasons.append(Reason("no_imagery", f"only {observation.coverage_fraction:.0%} of the field lies inside the "
                                "satellite tiles we hold; it will be checked when imagery of it arrives", True))
        v.status = "rejected"
        return v
    usable = observation.usable_dates
    if len(usable) < settings.min_usable_dates:
        v.reasons.append(Reason("insufficient_imagery", f"{len(usable)} cloud-free date(s) of this field this season; "
                                f"at least {settings.min_usable_dates} are needed to recognise the crop", True))
    farmland_fraction = observation.farmland_fraction or 0.0
    # The imagery's shares are of the pixels inside the tiles: land outside them is not verified.
    imaged_ha = claimed_area_ha * min(1.0, observation.coverage_fraction)
    v.farmland_area_ha = imaged_ha * farmland_fraction
    v.planted_area_ha = imaged_ha * (observation.planted_fraction or 0.0)
    if imaged_ha < claimed_area_ha * (1 - 1e-6):
        v.reasons.append(Reason("outside_imagery", f"{claimed_area_ha - imaged_ha:.2f} ha "
                                f"({1 - observation.coverage_fraction:.0%}) of the field lies outside the satellite "
                                "tiles we hold; only the part inside is valued"))
    v.crop, v.crop_probability = observation.crop
    uncertain_at, guess = None, ""
    if v.crop is not None and v.crop_probability < settings.crop_unknown_below:
        uncertain_at, guess = len(v.reasons), f"the crop is uncertain (best guess {v.crop}, {v.crop_probability:.0%})"
        v.reasons.append(Reason("crop_uncertain", f"{guess}; it is valued at the least valuable likely crop"))
        v.crop = legend.UNKNOWN
    v.cropland_probability = observation.cropland_probability
    v.crop_probs = dict(observation.crop_probs)
    declared = declared_crop_reason(declared_crop, v.crop, v.crop_probability, v.crop_probs)
    declared_at = len(v.reasons)
    if declared is not None:
        v.reasons.append(declared)
    if farmland_fraction < settings.min_farmland_fraction:
        v.reasons.append(Reason("not_farmland", f"only {farmland_fraction:.0%} of the drawn area looks like farmland "
                                "in the imagery; check that the boundary is drawn around the field", True))
    elif v.crop_probs and v.cropland_probability < settings.min_farmland_probability:
        top = max(v.crop_probs, key=v.crop_probs.__getitem__)
        v.reasons.append(Reason("not_cropland", f"the season's vegetation looks like {top.replace('_', ' ')} "
                                f"({v.crop_probs[top]:.0%}), not a crop or managed grass", True))
    if overlap_area_ha > settings.max_overlap_fraction * claimed_area_ha:
        v.reasons.append(Reason("overlap", f"{overlap_area_ha:.2f} ha ({overlap_area_ha / claimed_area_ha:.0%}) of this "
                                "field is already claimed by an earlier pledge (yours or another borrower's); land is "
                                "pledged once: contact the bank to resolve it", True))
    if crop_failure:
        v.reasons.append(Reason("crop_failure", crop_failure))
    if sensor_evidence is not None and sensor_evidence.get("status") in ("silent", "implausible"):
        v.reasons.append(Reason(f"sensor_{sensor_evidence['status']}", str(sensor_evidence.get("message", ""))))
    if review is not None and review.decision == "reject":
        v.reasons.append(Reason("review_rejected", f"rejected by credit officer {review.decided_by}: {review.note}", True))
    if any(r.blocking for r in v.reasons):
        v.status = "rejected"
        if uncertain_at is not None:  # nothing is valued: the reasons must not say how it would be
            v.reasons[uncertain_at] = Reason("crop_uncertain", guess)
        if declared is not None:
            v.reasons[declared_at] = declared_crop_reason(declared_crop, v.crop, v.crop_probability, v.crop_probs,
                                                          valued=False) or declared
        return v
    # The questions only an officer answers; each needs an approval given on that question (an
    # approval of something else, a boundary or old imagery, does not settle it). All of them are
    # asked at once, with the area an approval would value.
    open_questions: list[Reason] = []

    def ask(question: Reason, about: str, *codes: str) -> None:
        if review is not None and review.settles(*codes):
            v.reasons.append(review.approval(about, *codes))
        else:
            open_questions.append(question)

    if contested_overlap_ha > settings.max_overlap_fraction * claimed_area_ha:
        contested = (f"{contested_overlap_ha:.2f} ha ({contested_overlap_ha / claimed_area_ha:.0%}) of this field lies "
                     "inside another borrower's earlier claim that does not hold it firmly (drawn past its own "
                     "field and valued only at that field, or still waiting for an officer)")
        ask(Reason("overlap_contested", f"{contested}; a credit officer decides whose land it is before any credit"),
            contested, "overlap_contested")
    elif review is not None and review.settles("overlap_contested"):  # the officer's award is why the land is free
        v.reasons.append(review.approval("overlap contested", "overlap_contested"))
    if refused_before is not None:  # ``refused_before``: an officer refused the borrower this land in another claim
        ask(Reason("rejected_before", f"{refused_before}; a credit officer will check this claim before any credit"),
            "land rejected before", "rejected_before")
    v.verified_area_ha = max(0.0, min(v.planted_area_ha, claimed_area_ha) - overlap_area_ha)
    judgement = bnd.judge(observation.boundary, settings)
    if observation.boundary is not None:
        v.boundary = {**observation.boundary.to_dict(), "verdict": judgement.kind, **judgement.details}
    on_field_ha = max(0.0, judgement.field_fraction * claimed_area_ha - overlap_area_ha)
    bitten = judgement.kind == bnd.MATCH and on_field_ha < v.verified_area_ha
    if judgement.kind == bnd.INFLATED:  # valued at the detected field, not at the drawing
        v.verified_area_ha = min(v.verified_area_ha, on_field_ha)
        v.reasons.append(Reason(judgement.code, judgement.message))
    elif bitten:  # the field as drawn, less what lies on the neighbours' fields or around the field
        v.verified_area_ha = on_field_ha
        v.reasons.append(Reason(judgement.code, judgement.message) if judgement.code != "ok" else
                         Reason("boundary_neighbours", f"{1 - judgement.field_fraction:.0%} of the drawing lies on "
                                "neighbouring fields the imagery shows; only your field is valued"))
    if judgement.kind == bnd.MISMATCH:
        ask(Reason(judgement.code, judgement.message), judgement.code.replace("_", " "), *BOUNDARY_QUESTIONS)
    stale = stale_imagery(usable, as_of, settings)
    if stale is not None:
        ask(Reason("stale_imagery", stale), "stale imagery", "stale_imagery")
    if open_questions:
        v.status = "review"
        v.reasons.extend(open_questions)
        return v
    if v.verified_area_ha < settings.partial_below * claimed_area_ha:
        v.status = "partial"
        if judgement.kind != bnd.INFLATED and not bitten:  # the boundary reason already says what is valued
            v.reasons.append(Reason("partly_planted", f"{v.verified_area_ha:.2f} of {claimed_area_ha:.2f} ha "
                                    f"({v.verified_area_ha * MU_PER_HA:.0f} mu) is planted farmland; only that part is "
                                    "valued"))
    else:
        what = "cropland (crop uncertain)" if v.crop == legend.UNKNOWN else v.crop
        dates = len(observation.season_dates)  # of the season the crop was judged on, not older ones
        v.reasons.append(Reason("ok", f"{v.verified_area_ha:.2f} ha of {what} confirmed by {dates} satellite dates"))
    return v
