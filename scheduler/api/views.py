"""JSON API for the clinic's website and integrations: the same rules as the form."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from scheduler.api.forms import ApiBookingForm
from scheduler.appointments.lifecycle import API
from scheduler.appointments.links import manage_url
from scheduler.appointments.operations import (
    BookingCapReached,
    BookingError,
    IdempotencyKeyReused,
    SlotFull,
    SlotNotBookable,
    SlotNotFound,
    book_appointment,
)
from scheduler.appointments.validation import IDEMPOTENCY_KEY_PATTERN, formdata_from_json
from scheduler.availability.operations import (
    active_location_ref,
    active_locations,
    location_tz,
    open_slot_entries,
    slot_entry_fields,
)
from scheduler.availability.slots import local_day_bounds
from scheduler.database import unit_of_work
from scheduler.display import local_isoformat, public_address
from scheduler.extensions import booking_limit
from scheduler.models import Appointment, Location, utcnow

bp = Blueprint("api", __name__, url_prefix="/api/v1")

DEFAULT_RANGE_DAYS = 14
# Deeper JSON is refused with 400 (a booking is one flat object).
MAX_JSON_DEPTH = 32
MAX_RANGE_DAYS = 92
# Dates outside these name no slot and would overflow the calendar arithmetic.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2199, 12, 31)


def api_error(status: int, error: str, message: str, **extra: Any) -> ResponseReturnValue:
    return jsonify(error=error, message=message, **extra), status


def location_json(location: Location) -> dict[str, str | bool]:
    """Until staff confirm the street address, only the city and state (as patients see it)."""
    return {
        "slug": location.slug,
        "name": location.name,
        "timezone": location.timezone,
        "address": public_address(location),
        "address_confirmed": not location.address_is_placeholder,
        "phone": location.phone,
    }


@bp.get("/locations")
def locations() -> ResponseReturnValue:
    return jsonify([location_json(loc) for loc in active_locations()])


def _date_arg(name: str, default: date) -> date:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        abort(400, description=f"'{name}' must be a date as YYYY-MM-DD.")
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        abort(400, description=f"'{name}' must be between {EARLIEST_DATE} and {LATEST_DATE}.")
    return value


@bp.get("/locations/<slug>/slots")
def slots(slug: str) -> ResponseReturnValue:
    location = active_location_ref(slug)
    if location is None:
        abort(404, description=f"No location '{slug}'.")
    tz = location_tz(location)
    today = utcnow().astimezone(tz).date()
    first = _date_arg("from", today)
    last = _date_arg("to", first + timedelta(days=DEFAULT_RANGE_DAYS))
    if first > last:
        abort(400, description="'from' must not be after 'to'.")
    if (last - first).days > MAX_RANGE_DAYS:
        abort(400, description=f"The range may span at most {MAX_RANGE_DAYS} days.")
    start, _ = local_day_bounds(first, tz)
    _, end = local_day_bounds(last, tz)
    entries = open_slot_entries(location.id, start, end)
    heads = _slot_json_heads.get(location.timezone) or _new_heads(location.timezone)
    slots_json = ",".join(
        f"{heads.get(key) or _slot_json_head(heads, key, location.timezone)}{remaining}}}"
        for key, _, remaining in map(_split_remaining, entries)
    )
    body = f'{{"location":{json.dumps(location.slug)},"slots":[{slots_json}]}}'
    return current_app.response_class(body, mimetype="application/json")


def _split_remaining(entry: str) -> tuple[str, str, str]:
    return entry.rpartition("|")


# Per time zone: a slot's entry up to "remaining" -> its JSON up to the "remaining" value.
_slot_json_heads: dict[str, dict[str, str]] = {}
_SLOT_JSON_HEADS_MAX = 100_000


def _new_heads(tz_name: str) -> dict[str, str]:
    return _slot_json_heads.setdefault(tz_name, {})


def _slot_json_head(heads: dict[str, str], key: str, tz_name: str) -> str:
    """A slot's JSON up to its ``remaining`` value, the one part that changes.

    The listing is the API's hottest call: each slot is encoded once per
    process and only ``remaining`` is appended per request. The entry is
    found by the slot's id and times as stored (``open_slot_entries``), so a
    reused id or a restored database can never serve stale times.
    """
    slot_id, starts_at, ends_at, _ = slot_entry_fields(f"{key}|0")
    encoded = json.dumps(
        {
            "id": slot_id,
            "start": local_isoformat(starts_at, tz_name),
            "end": local_isoformat(ends_at, tz_name),
            "remaining": 0,
        },
        separators=(",", ":"),
    )
    head = encoded.removesuffix("0}")
    if len(heads) >= _SLOT_JSON_HEADS_MAX:
        heads.clear()
    heads[key] = head
    return head


def json_depth(value: Any) -> int:
    """How deeply containers nest in a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth) for child in children)
    return deepest


def json_object_body() -> dict[str, Any] | None:
    """The request's JSON object, or None for any body that is not one.

    Not JSON, not UTF-8, nested past MAX_JSON_DEPTH (5,000 brackets in 64 KiB
    would exhaust the parser's recursion) or numbers past the interpreter's limits.
    """
    if not request.is_json:
        return None
    try:
        payload = json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or json_depth(payload) > MAX_JSON_DEPTH:
        return None
    return payload


def appointment_json(appt: Appointment) -> dict[str, Any]:
    location = appt.slot.location
    return {
        "reference": appt.reference,
        "status": appt.status,
        "location": location.slug,
        "start": local_isoformat(appt.slot.starts_at, location.timezone),
        "end": local_isoformat(appt.slot.ends_at, location.timezone),
        "manage_url": manage_url(appt),
    }


@bp.post("/appointments")
@booking_limit
def create_appointment() -> ResponseReturnValue:
    payload = json_object_body()
    if payload is None:
        return api_error(
            400,
            "bad_request",
            "Send a JSON object with Content-Type: application/json, "
            f"nested at most {MAX_JSON_DEPTH} levels.",
        )
    formdata, type_errors = formdata_from_json(payload)
    form = ApiBookingForm(formdata=formdata)
    form.validate()
    errors = {name: list(msgs) for name, msgs in form.errors.items()}
    errors.update(type_errors)
    if errors:
        return jsonify(error="invalid", errors=errors), 422
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY_PATTERN.match(key):
        message = "1 to 64 printable ASCII characters, no spaces."
        return jsonify(error="invalid", errors={"Idempotency-Key": [message]}), 422
    try:
        with unit_of_work():
            appt = book_appointment(
                form.to_booking_request(
                    source="api", idempotency_key=f"api:{key}" if key else None
                ),
                API,
            )
    except SlotNotFound as exc:
        return api_error(404, exc.code, str(exc))
    except SlotFull as exc:
        return api_error(409, exc.code, str(exc))
    except SlotNotBookable as exc:
        return api_error(409, exc.code, str(exc))
    except IdempotencyKeyReused as exc:
        return api_error(422, exc.code, str(exc))
    except BookingCapReached as exc:
        return api_error(409, exc.code, str(exc))
    except BookingError as exc:
        return api_error(503, exc.code, str(exc))
    return jsonify(appointment_json(appt)), 201


@bp.get("/")
def root() -> ResponseReturnValue:
    return jsonify(
        version="v1",
        clinic=current_app.config["CLINIC_NAME"],
        endpoints=[
            "GET /api/v1/locations",
            "GET /api/v1/locations/<slug>/slots?from=YYYY-MM-DD&to=YYYY-MM-DD",
            "POST /api/v1/appointments",
        ],
    )
