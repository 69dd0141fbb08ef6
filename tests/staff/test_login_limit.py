"""Sign-in is rate limited per client (Flask-Limiter)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from scheduler.extensions import limiter
from scheduler.models import StaffUser
from tests.staff.conftest import sign_in


@pytest.fixture
def app_config() -> Iterator[dict[str, Any]]:
    yield {"RATELIMIT_ENABLED": True, "RATELIMIT_LOGIN": "10 per minute"}
    limiter.reset()


def test_sign_in_is_rate_limited(app: Flask, scheduler_user: StaffUser) -> None:
    client = app.test_client()
    statuses = [sign_in(client, scheduler_user, "wrong password!").status_code for _ in range(12)]
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    assert sign_in(client, scheduler_user).status_code == 429  # even the right password
