"""Staff forms (Flask-WTF, CSRF on every one)."""

from __future__ import annotations

from typing import Any

import phonenumbers
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)

# types-WTForms describes WTForms 3.2; SelectChoice came with 3.3.
from wtforms.fields import SelectChoice  # type: ignore[attr-defined]
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    Optional,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from scheduler.appointments.validation import MAX_ID, IntRange
from scheduler.models import StaffRole

WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
WEEKDAYS = list(enumerate(WEEKDAY_NAMES))


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class ActionForm(FlaskForm):
    """A button that changes an appointment; the version makes a stale page lose cleanly."""

    version = HiddenField(validators=[DataRequired()])


class WaitlistActionForm(FlaskForm):
    """Offer a time to, or remove, someone on a waitlist (CSRF only; the view reads the rest)."""


class MergeForm(FlaskForm):
    """Merge one patient record into another of the same person."""

    into = IntegerField(validators=[InputRequired(), IntRange(1, MAX_ID)])


class NoteForm(ActionForm):
    body = TextAreaField("Private note", validators=[DataRequired(), Length(max=2000)])


class SlotBlockForm(FlaskForm):
    reason = StringField("Reason", validators=[Optional(), Length(max=120)])


class OpeningRuleForm(FlaskForm):
    weekday = SelectField(
        "Day", choices=[SelectChoice(n, name) for n, name in WEEKDAYS], coerce=int
    )
    start_time = TimeField("Opens", validators=[InputRequired()])
    end_time = TimeField("Closes", validators=[InputRequired()])
    slot_minutes = IntegerField("Minutes per slot", validators=[InputRequired(), IntRange(5, 240)])
    capacity = IntegerField("Patients per slot", validators=[InputRequired(), IntRange(1, 20)])

    def validate_end_time(self, field: TimeField) -> None:
        if self.start_time.data and field.data and field.data <= self.start_time.data:
            raise ValidationError("Closing time must be after opening time.")


class ExceptionForm(FlaskForm):
    day = DateField("Date", validators=[InputRequired()])
    kind = SelectField(
        "What", choices=[SelectChoice("closed", "Closed"), SelectChoice("extra", "Extra session")]
    )
    start_time = TimeField("From", validators=[Optional()])
    end_time = TimeField("To", validators=[Optional()])
    slot_minutes = IntegerField("Minutes per slot", validators=[Optional(), IntRange(5, 240)])
    capacity = IntegerField("Patients per slot", validators=[Optional(), IntRange(1, 20)])
    reason = StringField("Reason", validators=[Optional(), Length(max=120)])

    def validate(self, extra_validators: Any = None) -> bool:
        """The times together: both or neither; an extra session needs them."""
        valid = super().validate(extra_validators)
        start, end = self.start_time.data, self.end_time.data
        problem = None
        if (start is None) != (end is None):
            problem = "Give both times, or neither for the whole day."
        elif start and end and end <= start:
            problem = "The end must be after the start."
        elif self.kind.data == "extra" and not start:
            problem = "An extra session needs its hours."
        if problem:
            self.end_time.errors = [*self.end_time.errors, problem]
            return False
        return valid


class LocationForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    address = StringField("Street address", validators=[DataRequired(), Length(max=255)])
    phone = StringField("Phone", validators=[DataRequired(), Length(max=20)])
    closed_on_federal_holidays = BooleanField("Closed on US federal holidays")
    is_active = BooleanField("Open for booking")

    def validate_phone(self, field: StringField) -> None:
        try:
            number = phonenumbers.parse(field.data or "", "US")
        except phonenumbers.NumberParseException:
            raise ValidationError("Enter a US phone number, like (210) 920-8945.") from None
        if not phonenumbers.is_valid_number(number):
            raise ValidationError("Enter a US phone number, like (210) 920-8945.")
        field.data = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class TemplateForm(FlaskForm):
    # Texts are held to 1,600 characters by their own check; emails and pages may be longer.
    body = TextAreaField("Text", validators=[DataRequired(), Length(max=8000)])


class CheckboxesField(SelectMultipleField):
    """Several choices as checkboxes (the choices are set per request)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class StaffAccountForm(FlaskForm):
    """An admin changes an account's role and locations, and sets a new password when one
    is given."""

    role = SelectField("Role", choices=[SelectChoice(r.value, r.value.title()) for r in StaffRole])
    locations = CheckboxesField("Locations", coerce=int, validate_choice=True)
    password = PasswordField(
        "New password (leave empty to keep)", validators=[Optional(), Length(min=12, max=200)]
    )


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=200)]
    )
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=200)])
    confirm_password = PasswordField(
        "New password again", validators=[DataRequired(), Length(max=200)]
    )

    def validate_confirm_password(self, field: PasswordField) -> None:
        if field.data != self.new_password.data:
            raise ValidationError("The two new passwords are not the same.")


class CodeForm(FlaskForm):
    """A six-digit code from the authenticator app (or, at sign-in, a recovery code)."""

    code = StringField("Code", validators=[DataRequired(), Length(max=40)])


class TotpOffForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    code = StringField("Code from the app", validators=[DataRequired(), Length(max=40)])


class StaffUserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    role = SelectField("Role", choices=[SelectChoice(r.value, r.value.title()) for r in StaffRole])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=12, max=200)])


class ReplyForm(FlaskForm):
    """Staff's answer to a patient's text; ``warned_for`` names the text staff were warned
    about (health details) and chose to send anyway."""

    body = TextAreaField("Reply to the patient by text", validators=[Length(max=1000)])
    warned_for = HiddenField()
    mark_handled = BooleanField("Mark the patient's unread replies handled", default=True)


class HandledForm(ActionForm):
    """Mark a patient's reply handled ("yes") or back to unread ("no")."""

    handled = HiddenField(validators=[DataRequired()])
