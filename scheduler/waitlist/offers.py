"""Offering freed places to waiting patients, taking accepted offers, running offers out.

A freed place goes to ``WAITLIST_BATCH`` waiting patients at a time, in join
order, among those whose window includes it and whom a channel can reach now.
Offers go out inside sending hours (an offer made at night is held until the
morning, and not made at all if the place is within the minimum notice by
then). The first to accept gets the place through ``take_place``'s
conditional UPDATE, like any booking; a booked patient is moved by the
lifecycle's move, so they never hold two places or none, and their old place
is freed for others in turn.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload

from scheduler.appointments.errors import (
    BookingCapReached,
    BookingError,
    SlotFull,
    SlotNotBookable,
)
from scheduler.appointments.lifecycle import Actor
from scheduler.appointments.operations import (
    BookingRequest,
    book_appointment,
    reschedule_appointment,
)
from scheduler.audit import audit_now
from scheduler.availability.operations import current_booking_window
from scheduler.database import (
    LOCK_OFFERS_OF_SLOT,
    lock_for_transaction,
    rows_changed,
    unit_of_work,
)
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    OfferOutcome,
    Slot,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from scheduler.sms.outbox import sending_hours
from scheduler.sms.timing import next_sending_moment
from scheduler.waitlist.channels import channels_reaching, minimum_notice, withdraw_messages
from scheduler.waitlist.entries import window_includes

OPEN = WaitlistOffer.outcome.is_(None)


def _open_offers_for(slot_id: int, now: datetime) -> int:
    return (
        db.session.scalar(
            select(func.count(WaitlistOffer.id)).where(
                WaitlistOffer.slot_id == slot_id, OPEN, WaitlistOffer.expires_at > now
            )
        )
        or 0
    )


def offerable_slot(slot_id: int, now: datetime) -> Slot | None:
    """The slot if a waiting patient could still take a place in it, read fresh."""
    slot = db.session.scalar(
        select(Slot)
        .options(joinedload(Slot.location))
        .where(Slot.id == slot_id)
        .execution_options(populate_existing=True)
    )
    if slot is None or slot.remaining <= 0 or not slot.location.is_active:
        return None
    if not current_booking_window(now).contains(slot.starts_at):
        return None
    return slot


def _candidates(slot: Slot, now: datetime) -> list[WaitlistEntry]:
    """Waiting patients whose window includes the slot, in join order, not offered it yet."""
    tz = ZoneInfo(slot.location.timezone)
    local_day = slot.starts_at.astimezone(tz).date()
    offered_before = select(WaitlistOffer.entry_id).where(WaitlistOffer.slot_id == slot.id)
    in_this_slot = select(Appointment.patient_id).where(
        Appointment.slot_id == slot.id, Appointment.status.in_(("booked", "confirmed"))
    )
    entries = db.session.scalars(
        select(WaitlistEntry)
        .options(joinedload(WaitlistEntry.patient), joinedload(WaitlistEntry.appointment))
        .where(
            WaitlistEntry.location_id == slot.location_id,
            WaitlistEntry.status == WaitlistStatus.WAITING,
            WaitlistEntry.earliest <= local_day,
            WaitlistEntry.latest >= local_day,
            WaitlistEntry.id.not_in(offered_before),
            WaitlistEntry.patient_id.not_in(in_this_slot),
        )
        .order_by(WaitlistEntry.joined_at, WaitlistEntry.id)
    ).all()
    wanted = []
    for entry in entries:
        if not window_includes(entry, slot, tz):
            continue
        held = entry.appointment
        if held is not None and held.is_changeable and held.slot.starts_at <= slot.starts_at:
            continue  # booked at this time or earlier already: not an earlier time
        wanted.append(entry)
    return wanted


def offer_place(slot_id: int, now: datetime, offered_by: str | None = None) -> list[WaitlistOffer]:
    """Offer the slot's free places to the next waiting patients (the caller's unit).

    Up to ``WAITLIST_BATCH`` open offers per free place. Nothing is offered if
    the first moment inside sending hours is already within the minimum notice.
    """
    # Two places of one slot freed at once: their offers are counted in turn.
    lock_for_transaction(LOCK_OFFERS_OF_SLOT, str(slot_id))
    slot = offerable_slot(slot_id, now)
    if slot is None:
        return []
    batch = current_app.config["WAITLIST_BATCH"]
    wanted = batch * slot.remaining - _open_offers_for(slot.id, now)
    if wanted <= 0:
        return []
    goes_out = next_sending_moment(now, ZoneInfo(slot.location.timezone), sending_hours())
    if goes_out >= slot.starts_at - minimum_notice():
        return []
    offers: list[WaitlistOffer] = []
    for entry in _candidates(slot, now):
        if len(offers) >= wanted:
            break
        offer = _make_offer(entry, slot, now, goes_out, offered_by)
        if offer is not None:
            offers.append(offer)
    return offers


def _make_offer(
    entry: WaitlistEntry,
    slot: Slot,
    now: datetime,
    goes_out: datetime,
    offered_by: str | None,
) -> WaitlistOffer | None:
    channels = channels_reaching(entry, now)
    if not channels:
        return None
    minutes = current_app.config["WAITLIST_OFFER_MINUTES"]
    # The offer runs out with its minutes, or when the place is within the notice.
    expires = min(goes_out + timedelta(minutes=minutes), slot.starts_at - minimum_notice())
    offer = WaitlistOffer(
        entry_id=entry.id,
        slot_id=slot.id,
        nonce=secrets.token_urlsafe(12),
        created_at=now,
        sent_at=goes_out,
        expires_at=expires,
        offered_by=offered_by,
    )
    offer.entry, offer.slot = entry, slot
    db.session.add(offer)
    entry.status, entry.status_at = WaitlistStatus.OFFERED, now
    db.session.flush()
    for channel in channels:
        channel.queue(offer, now)
    return offer


def offer_by_hand(entry: WaitlistEntry, slot_id: int, staff: Actor, now: datetime) -> WaitlistOffer:
    """Staff offer one free place to one waiting patient (audited)."""
    slot = offerable_slot(slot_id, now)
    if slot is None or slot.location_id != entry.location_id:
        raise SlotNotBookable("This time cannot be offered: it is full, too soon or closed.")
    if entry.status not in (WaitlistStatus.WAITING, WaitlistStatus.OFFERED):
        raise BookingError("This patient is no longer on the waitlist.")
    goes_out = next_sending_moment(now, ZoneInfo(slot.location.timezone), sending_hours())
    if goes_out >= slot.starts_at - minimum_notice():
        raise SlotNotBookable("This time is within the minimum notice by the time offers go out.")
    offer = _make_offer(entry, slot, now, goes_out, staff.audit_label)
    if offer is None:
        raise BookingError(
            "No offer can reach this patient now (no text consent or email address, "
            "opted out or unsubscribed, or at the daily cap)."
        )
    audit_now(
        "waitlist.offer",
        "waitlist_entry",
        entry.id,
        entry.reference,
        actor_id=staff.staff_id,
        actor_label=staff.audit_label,
        at=now,
        slot=slot.starts_at.isoformat(),
    )
    return offer


@dataclass(frozen=True)
class AcceptResult:
    """``accepted`` (with the booking), ``taken`` (someone was first), ``expired``, or
    ``closed`` (declined, or the patient is off the list)."""

    outcome: str
    appointment: Appointment | None = None
    # Why the booking was refused (``capped``): the doors say it in the patient's language.
    error: BookingError | None = None


def _close(offer_ids: list[int], outcome: OfferOutcome, now: datetime) -> None:
    if not offer_ids:
        return
    db.session.execute(
        update(WaitlistOffer)
        .where(WaitlistOffer.id.in_(offer_ids), OPEN)
        .values(outcome=outcome, outcome_at=now),
        execution_options={"synchronize_session": False},
    )
    withdraw_messages(offer_ids, f"offer_{outcome}", now)


def _back_to_waiting(entry_ids: set[int], now: datetime) -> None:
    """Entries whose last open offer closed wait again."""
    for entry_id in entry_ids:
        still_open = db.session.scalar(
            select(func.count(WaitlistOffer.id)).where(WaitlistOffer.entry_id == entry_id, OPEN)
        )
        if not still_open:
            db.session.execute(
                update(WaitlistEntry)
                .where(WaitlistEntry.id == entry_id, WaitlistEntry.status == WaitlistStatus.OFFERED)
                .values(status=WaitlistStatus.WAITING, status_at=now),
                execution_options={"synchronize_session": False},
            )


class OfferClosed(BookingError):
    code = "offer_closed"


def _lock_slot_rows(slot_ids: list[int]) -> None:
    """Row locks on the slots an accept touches, first and in id order: accepts of one
    place queue here, so none holds its offer while waiting for the slot (no deadlock
    with the winner closing the others' offers). SQLite has one writer already."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            select(Slot.id).where(Slot.id.in_(slot_ids)).order_by(Slot.id).with_for_update()
        ).all()


def accept_offer(offer_id: int, actor: Actor, now: datetime) -> AcceptResult:
    """Take the offered place, in a unit of work of its own (the first accept wins)."""
    try:
        with unit_of_work():
            return _accept(offer_id, actor, now)
    except OfferClosed:
        return AcceptResult("closed")
    except BookingCapReached as exc:
        return AcceptResult("capped", error=exc)
    except (SlotFull, SlotNotBookable):
        # Someone was first (or the place is gone): the patient stays on the list.
        with unit_of_work():
            _close([offer_id], OfferOutcome.TAKEN, now)
            offer = db.session.get_one(WaitlistOffer, offer_id)
            _back_to_waiting({offer.entry_id}, now)
        return AcceptResult("taken")


def _accept(offer_id: int, actor: Actor, now: datetime) -> AcceptResult:
    offer = db.session.get_one(WaitlistOffer, offer_id)
    held_slot = db.session.scalar(
        select(Appointment.slot_id)
        .join(WaitlistEntry, WaitlistEntry.appointment_id == Appointment.id)
        .where(WaitlistEntry.id == offer.entry_id)
    )
    _lock_slot_rows(sorted({offer.slot_id, *([held_slot] if held_slot else [])}))
    claimed = rows_changed(
        update(WaitlistOffer)
        .where(WaitlistOffer.id == offer_id, OPEN, WaitlistOffer.expires_at > now)
        .values(outcome=OfferOutcome.ACCEPTED, outcome_at=now)
    )
    db.session.refresh(offer)
    if claimed != 1:
        if offer.outcome is None or offer.outcome == OfferOutcome.EXPIRED:
            return AcceptResult("expired")
        if offer.outcome == OfferOutcome.ACCEPTED:
            return AcceptResult("accepted", offer.appointment)
        return AcceptResult(str(offer.outcome) if offer.outcome == "taken" else "closed")
    entry = db.session.get_one(WaitlistEntry, offer.entry_id, populate_existing=True)
    if not entry.is_on_the_list:
        raise OfferClosed("This request is no longer on the waitlist.")
    # Off the list first: the place this patient frees (a move) is offered to others.
    entry.status, entry.status_at = WaitlistStatus.BOOKED, now
    db.session.flush()
    held = entry.appointment
    if held is not None and held.is_changeable and held.slot.starts_at > now:
        new = reschedule_appointment(held, offer.slot_id, actor, now)
    else:
        patient = entry.patient
        new = book_appointment(
            BookingRequest(
                slot_id=offer.slot_id,
                first_name=patient.first_name,
                last_name=patient.last_name,
                phone=patient.phone,
                email=patient.email,
                date_of_birth=patient.date_of_birth,
                language=patient.language,
                sms_consent=patient.sms_consent,
                sms_consent_text=patient.sms_consent_text,
                conservative_treatment=None,
                source="waitlist",
            ),
            actor,
            now,
        )
    entry.appointment_id = new.id
    offer.appointment_id = new.id
    if entry.compared_with is not None:
        sooner = (entry.compared_with - new.slot.starts_at).total_seconds() / 86400
        offer.days_sooner = max(sooner, 0.0)
    others = list(
        db.session.scalars(
            select(WaitlistOffer.id).where(
                WaitlistOffer.entry_id == entry.id, WaitlistOffer.id != offer.id, OPEN
            )
        )
    )
    _close(others, OfferOutcome.DECLINED, now)
    withdraw_messages([offer.id], "offer_accepted", now)
    _close_offers_of_full_slot(offer.slot_id, now)
    if new.rescheduled_from_id is not None and held is not None:
        # The old place was offered as it freed, while the others offered this time still
        # held their offers: now that theirs closed, they may be offered the old place.
        offer_place(held.slot_id, now)
    audit_now(
        "waitlist.accept",
        "waitlist_entry",
        entry.id,
        entry.reference,
        actor_id=actor.staff_id,
        actor_label=actor.audit_label,
        at=now,
        appointment=new.reference,
    )
    return AcceptResult("accepted", new)


def _close_offers_of_full_slot(slot_id: int, now: datetime) -> None:
    slot = db.session.get_one(Slot, slot_id, populate_existing=True)
    if slot.remaining > 0:
        return
    rows = db.session.execute(
        select(WaitlistOffer.id, WaitlistOffer.entry_id).where(
            WaitlistOffer.slot_id == slot_id, OPEN
        )
    ).all()
    _close([row.id for row in rows], OfferOutcome.TAKEN, now)
    _back_to_waiting({row.entry_id for row in rows}, now)


def decline_offer(offer_id: int, now: datetime) -> bool:
    """The patient does not want this time (they stay on the list); the next one is asked."""
    with unit_of_work():
        offer = db.session.get_one(WaitlistOffer, offer_id)
        if offer.outcome is not None:
            return False
        _close([offer_id], OfferOutcome.DECLINED, now)
        _back_to_waiting({offer.entry_id}, now)
        offer_place(offer.slot_id, now)
    return True


@dataclass
class OfferRound:
    expired: int = 0
    taken: int = 0
    sent: int = 0


def run_offers(now: datetime) -> OfferRound:
    """Run out offers past their time, close offers of places gone, and send the next batch.

    The job in ``flask scheduler`` and ``flask waitlist offers [--now]``; safe to
    run in several processes at once (each offer closes once, by a conditional UPDATE).
    """
    result = OfferRound()
    with unit_of_work():
        due = db.session.execute(
            select(WaitlistOffer.id, WaitlistOffer.entry_id, WaitlistOffer.slot_id).where(
                OPEN, WaitlistOffer.expires_at <= now
            )
        ).all()
        _close([row.id for row in due], OfferOutcome.EXPIRED, now)
        result.expired = len(due)
        open_rows = db.session.execute(
            select(WaitlistOffer.id, WaitlistOffer.entry_id, WaitlistOffer.slot_id).where(OPEN)
        ).all()
        gone = [row for row in open_rows if offerable_slot(row.slot_id, now) is None]
        _close([row.id for row in gone], OfferOutcome.TAKEN, now)
        result.taken = len(gone)
        _back_to_waiting({row.entry_id for row in [*due, *gone]}, now)
    # The next batch for the places whose offers ran out.
    for slot_id in sorted({row.slot_id for row in due}):
        with unit_of_work():
            result.sent += len(offer_place(slot_id, now))
    return result
