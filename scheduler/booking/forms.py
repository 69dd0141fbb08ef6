"""The manage pages' forms (the booking form itself is in scheduler.appointments.forms)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired

from scheduler.appointments.validation import MAX_ID, IntRange


class RescheduleForm(FlaskForm):
    slot_id = IntegerField(validators=[InputRequired(), IntRange(min=1, max=MAX_ID)])


class CancelForm(FlaskForm):
    pass
