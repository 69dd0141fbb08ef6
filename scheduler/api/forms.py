"""The API's booking form: the same fields and rules as the public form."""

from __future__ import annotations

from wtforms import DateField
from wtforms.validators import Optional

from scheduler.appointments.forms import BookingFields
from scheduler.appointments.validation import plausible_birth_date
from scheduler.waitlist.forms import WaitlistFields


class ApiBookingForm(BookingFields):
    """The API's form: no CSRF (JSON only), date of birth optional."""

    class Meta:
        csrf = False

    date_of_birth = DateField(
        "Date of birth",
        format=["%Y-%m-%d"],
        validators=[Optional(), plausible_birth_date],
    )


class ApiWaitlistForm(WaitlistFields):
    """The API's waitlist form: the booking's person fields without a slot, plus the window."""

    class Meta:
        csrf = False

    date_of_birth = DateField(
        "Date of birth",
        format=["%Y-%m-%d"],
        validators=[Optional(), plausible_birth_date],
    )
