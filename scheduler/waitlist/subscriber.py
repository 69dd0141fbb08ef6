"""Waitlist offers follow the lifecycle: a freed place is offered in the freeing transaction."""

from __future__ import annotations

from scheduler.appointments.lifecycle import PlaceFreed
from scheduler.waitlist.offers import offer_place


def offers_for(event: PlaceFreed) -> None:
    offer_place(event.slot_id, event.at)
